/**
 * Rules for rendered Kubernetes objects that the OpenAPI schemas do not express: rules the API server enforces
 * across fields (backoffLimitPerIndex needs restartPolicy Never), and this project's own (workers run --once, every
 * pod is non-root, long-running containers have probes, images are pinned, selectors select something). Pure:
 * objects in, findings out.
 */

export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: { name?: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface Finding {
  /** kind/name of the object, or the file. */
  object: string;
  message: string;
}

type Json = Record<string, unknown>;
const obj = (v: unknown): Json =>
  v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : {};
const arr = (v: unknown): Json[] => (Array.isArray(v) ? (v as Json[]) : []);
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'PersistentVolume',
  'StorageClass',
  'CustomResourceDefinition',
  'PriorityClass',
]);
const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);
const LONG_RUNNING = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet']);

export function describe(o: K8sObject): string {
  return `${o.kind ?? '?'}/${o.metadata?.name ?? '?'}`;
}

interface PodTemplate {
  owner: K8sObject;
  namespace: string | undefined;
  labels: Record<string, string>;
  spec: Json;
}

function podTemplate(o: K8sObject): PodTemplate | undefined {
  if (!o.kind || !WORKLOADS.has(o.kind)) return undefined;
  const template = obj(o.spec?.['template']);
  return {
    owner: o,
    namespace: o.metadata?.namespace,
    labels: obj(obj(template['metadata'])['labels']) as Record<string, string>,
    spec: obj(template['spec']),
  };
}

function containersOf(spec: Json): Json[] {
  return [...arr(spec['initContainers']), ...arr(spec['containers'])];
}

/** An image reference is pinned when it has a digest, or a tag that names an exact version (not latest). */
export function isPinnedImage(image: string): boolean {
  if (/@sha256:[0-9a-f]{64}$/.test(image)) return true;
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  if (colon < 0) return false;
  const tag = image.slice(colon + 1);
  // An exact version: at least major.minor.patch (v-prefix and suffixes such as -bookworm allowed).
  return /^v?\d+\.\d+\.\d+([.+-][\w.+-]*)?$/.test(tag);
}

function matches(selector: Record<string, string>, labels: Record<string, string>): boolean {
  const keys = Object.keys(selector);
  return keys.length > 0 && keys.every((k) => labels[k] === selector[k]);
}

function checkPodSecurity(t: PodTemplate, add: (m: string) => void): void {
  const pod = obj(t.spec['securityContext']);
  for (const c of containersOf(t.spec)) {
    const name = str(c['name']) ?? '?';
    const sc = obj(c['securityContext']);
    const runAsNonRoot = sc['runAsNonRoot'] ?? pod['runAsNonRoot'];
    if (runAsNonRoot !== true) add(`container ${name}: runAsNonRoot is not true`);
    const uid = sc['runAsUser'] ?? pod['runAsUser'];
    if (uid === 0) add(`container ${name}: runAsUser is 0 (root)`);
    const seccomp = str(obj(sc['seccompProfile'] ?? pod['seccompProfile'])['type']);
    if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
      add(`container ${name}: seccompProfile is not RuntimeDefault`);
    if (sc['allowPrivilegeEscalation'] !== false)
      add(`container ${name}: allowPrivilegeEscalation is not false`);
    if (sc['privileged'] === true) add(`container ${name}: privileged`);
    const drop = arr(obj(sc['capabilities'])['drop']) as unknown[];
    if (!drop.includes('ALL')) add(`container ${name}: capabilities do not drop ALL`);
    if (sc['readOnlyRootFilesystem'] !== true) add(`container ${name}: readOnlyRootFilesystem is not true`);
  }
}

function checkResources(t: PodTemplate, add: (m: string) => void): void {
  for (const c of containersOf(t.spec)) {
    const name = str(c['name']) ?? '?';
    const resources = obj(c['resources']);
    const requests = obj(resources['requests']);
    const limits = obj(resources['limits']);
    for (const r of ['cpu', 'memory'])
      if (requests[r] === undefined) add(`container ${name}: no ${r} request`);
    if (limits['memory'] === undefined) add(`container ${name}: no memory limit`);
    // Extended resources (GPUs) are not overcommitted: the API server wants request = limit.
    for (const r of new Set([...Object.keys(requests), ...Object.keys(limits)])) {
      if (!r.includes('/')) continue;
      if (limits[r] === undefined) add(`container ${name}: ${r} has a request but no limit`);
      else if (requests[r] !== undefined && String(requests[r]) !== String(limits[r]))
        add(
          `container ${name}: ${r} request ${String(requests[r])} differs from its limit ${String(limits[r])}`,
        );
    }
  }
}

function checkImages(t: PodTemplate, add: (m: string) => void): void {
  for (const c of containersOf(t.spec)) {
    const image = str(c['image']);
    if (!image) add(`container ${str(c['name']) ?? '?'}: no image`);
    else if (!isPinnedImage(image))
      add(`container ${str(c['name']) ?? '?'}: image ${image} is not pinned (exact version tag or digest)`);
  }
}

function portNumber(probe: Json): unknown {
  for (const kind of ['grpc', 'httpGet', 'tcpSocket']) {
    const p = obj(probe[kind]);
    if (p['port'] !== undefined) return p['port'];
  }
  return undefined;
}

function checkProbes(t: PodTemplate, add: (m: string) => void): void {
  if (!LONG_RUNNING.has(t.owner.kind ?? '')) return;
  for (const c of arr(t.spec['containers'])) {
    const name = str(c['name']) ?? '?';
    const ports = arr(c['ports']);
    for (const probeName of ['readinessProbe', 'livenessProbe']) {
      const probe = c[probeName];
      if (probe === undefined) {
        add(`container ${name}: no ${probeName}`);
        continue;
      }
      const port = portNumber(obj(probe));
      const declared = ports.some((p) => p['containerPort'] === port || p['name'] === port);
      if (port !== undefined && !declared)
        add(`container ${name}: ${probeName} port ${String(port)} is not a container port`);
    }
    const args = (arr(c['args']) as unknown[]).map(String);
    if (args[0] === 'coordinator') {
      // kubelet's gRPC probe speaks plaintext: it must target the health-only port, which must be served.
      const health = args.find((a) => a.startsWith('--health-port='))?.split('=')[1];
      for (const probeName of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
        const probe = obj(c[probeName]);
        if (c[probeName] === undefined) {
          if (probeName !== 'startupProbe') continue;
          add(`container ${name}: the coordinator has no startupProbe`);
          continue;
        }
        const grpcPort = obj(probe['grpc'])['port'];
        if (grpcPort === undefined)
          add(`container ${name}: the coordinator's ${probeName} is not a gRPC health probe`);
        else if (health === undefined || Number(health) !== grpcPort)
          add(
            `container ${name}: ${probeName} probes port ${String(grpcPort)} but --health-port is ${health ?? 'not set'}`,
          );
      }
    }
  }
}

function envValue(c: Json, name: string): unknown {
  const e = arr(c['env']).find((v) => v['name'] === name);
  return e ? (e['value'] ?? (e['valueFrom'] ? '<from>' : undefined)) : undefined;
}

function checkJob(o: K8sObject, t: PodTemplate, add: (m: string) => void): void {
  const spec = obj(o.spec);
  const restart = t.spec['restartPolicy'];
  if (restart !== 'Never' && restart !== 'OnFailure')
    add(`restartPolicy must be Never or OnFailure (got ${String(restart)})`);
  if (spec['backoffLimitPerIndex'] !== undefined) {
    if (restart !== 'Never')
      add(`backoffLimitPerIndex requires restartPolicy Never (got ${String(restart)})`);
    if (spec['completionMode'] !== 'Indexed') add('backoffLimitPerIndex requires completionMode Indexed');
  }
  if (spec['podFailurePolicy'] !== undefined && restart !== 'Never')
    add(`podFailurePolicy requires restartPolicy Never (got ${String(restart)})`);
  if (spec['maxFailedIndexes'] !== undefined && spec['backoffLimitPerIndex'] === undefined)
    add('maxFailedIndexes requires backoffLimitPerIndex');
  for (const c of arr(t.spec['containers'])) {
    const args = [...(arr(c['command']) as unknown[]), ...(arr(c['args']) as unknown[])].map(String);
    const isWorker = args.some((a) => /(^|\s)worker(\s|$)/.test(a));
    if (!isWorker) continue;
    const name = str(c['name']) ?? '?';
    if (args[0] !== 'worker')
      add(
        `container ${name}: the image's entrypoint is phalanx; args should start with 'worker' (got ${JSON.stringify(args.slice(0, 2))})`,
      );
    // Without --once a worker waits for the next job forever: the Job never completes and holds its GPUs.
    if (!args.some((a) => a === '--once' || /\s--once(\s|$)/.test(a)))
      add(`container ${name}: worker runs without --once`);
    const world = envValue(c, 'WORLD_SIZE');
    if (world !== undefined && spec['completions'] !== undefined && Number(world) !== spec['completions'])
      add(
        `container ${name}: WORLD_SIZE ${String(world)} differs from completions ${String(spec['completions'])}`,
      );
    if (
      spec['completionMode'] === 'Indexed' &&
      envValue(c, 'RANK') === undefined &&
      envValue(c, 'PHALANX_WORKER_NAME') === undefined
    )
      add(
        `container ${name}: no RANK from the completion index (the worker name would not survive a restart)`,
      );
  }
}

/** Names of the Secrets a pod template reads (env, envFrom, volumes). */
export function secretsOf(spec: Json): string[] {
  const names = new Set<string>();
  for (const c of containersOf(spec)) {
    for (const e of arr(c['env'])) {
      const n = str(obj(obj(e['valueFrom'])['secretKeyRef'])['name']);
      if (n) names.add(n);
    }
    for (const e of arr(c['envFrom'])) {
      const n = str(obj(e['secretRef'])['name']);
      if (n) names.add(n);
    }
  }
  for (const v of arr(spec['volumes'])) {
    const n = str(obj(v['secret'])['secretName']);
    if (n) names.add(n);
  }
  return [...names];
}

export interface ManifestCheckOptions {
  /** Namespaces that exist besides those in `objects` (e.g. created by another overlay of the same install). */
  namespaces?: string[];
}

/** Findings for one rendered install (all objects of the overlays that are applied together). */
export function checkManifests(objects: K8sObject[], options: ManifestCheckOptions = {}): Finding[] {
  const findings: Finding[] = [];
  const namespaces = new Set([
    ...(options.namespaces ?? []),
    ...objects.filter((o) => o.kind === 'Namespace').map((o) => o.metadata?.name ?? ''),
  ]);
  const templates = objects.map(podTemplate).filter((t): t is PodTemplate => t !== undefined);
  const selects = (ns: string | undefined, selector: Record<string, string>) =>
    templates.some((t) => t.namespace === ns && matches(selector, t.labels));

  for (const o of objects) {
    const add = (message: string) => findings.push({ object: describe(o), message });
    if (!o.apiVersion || !o.kind || !o.metadata?.name) {
      add('apiVersion, kind and metadata.name are required');
      continue;
    }
    const ns = o.metadata.namespace;
    if (!CLUSTER_SCOPED.has(o.kind)) {
      if (!ns) add('no namespace');
      else if (!namespaces.has(ns)) add(`namespace ${ns} is not created by these manifests`);
    }
    const t = podTemplate(o);
    if (t) {
      checkPodSecurity(t, add);
      checkResources(t, add);
      checkImages(t, add);
      checkProbes(t, add);
      if (o.kind === 'Job') checkJob(o, t, add);
      const selector = obj(obj(o.spec?.['selector'])['matchLabels']) as Record<string, string>;
      if (o.kind !== 'Job' && !matches(selector, t.labels))
        add('spec.selector does not match the pod template labels');
    }
    if (o.kind === 'Service') {
      const selector = obj(o.spec?.['selector']) as Record<string, string>;
      if (!selects(ns, selector)) add('its selector matches no pod template');
    }
    if (o.kind === 'PodDisruptionBudget' || o.kind === 'NetworkPolicy') {
      const key = o.kind === 'NetworkPolicy' ? 'podSelector' : 'selector';
      const selector = obj(obj(o.spec?.[key])['matchLabels']) as Record<string, string>;
      if (Object.keys(selector).length > 0 && !selects(ns, selector))
        add(`its ${key} matches no pod template`);
    }
    if (o.kind === 'NetworkPolicy') {
      // Peers in the same namespace (no namespaceSelector) must select pods of this install.
      for (const rule of [...arr(o.spec?.['ingress']), ...arr(o.spec?.['egress'])]) {
        for (const peer of [...arr(rule['from']), ...arr(rule['to'])]) {
          if (peer['namespaceSelector'] !== undefined || peer['podSelector'] === undefined) continue;
          const selector = obj(obj(peer['podSelector'])['matchLabels']) as Record<string, string>;
          if (Object.keys(selector).length === 0) continue;
          const clientLabel = Object.keys(selector).every((k) => k.startsWith('phalanx.io/'));
          if (!clientLabel && !selects(ns, selector))
            add(`a peer podSelector ${JSON.stringify(selector)} matches no pod template`);
        }
      }
    }
  }
  return findings;
}
