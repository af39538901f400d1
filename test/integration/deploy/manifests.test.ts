/**
 * deploy/ as CI sees it: every overlay rendered by kustomize (kubectl kustomize), every object validated against
 * the Kubernetes OpenAPI schemas and the project's rules, the Dockerfiles checked statically, the docs' commands
 * pointing at things that exist. The manifests and Dockerfile that deploy/ held before must fail these checks.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { parseJobSpec } from '../../../src/config/jobSpec.ts';
import { BIN } from '../../support/processes.ts';
import path from 'node:path';
import {
  checkDeployTree,
  checkDockerfileAt,
  checkObjects,
  CONTAINER_DIR,
  contextAt,
  installs,
  missingReferences,
  OVERLAYS_DIR,
  overlays,
  phalanxInvocations,
  REPO,
  sectionCode,
} from '../../../src/deploy/checkDeploy.ts';
import { parseManifests, renderKustomization } from '../../../src/deploy/render.ts';
import type { K8sObject } from '../../../src/deploy/manifestChecks.ts';
import { checkDockerfile } from '../../../src/deploy/dockerfileChecks.ts';

const FIXTURES = path.join(REPO, 'test/fixtures/deploy');
const messages = (fs: { message: string }[]) => fs.map((f) => f.message);

function container(o: K8sObject, name: string): Record<string, unknown> {
  const spec = (o.spec?.['template'] as { spec: { containers: Record<string, unknown>[] } }).spec;
  return spec.containers.find((c) => c['name'] === name)!;
}

describe('deploy: Kubernetes manifests and images (offline checks)', function () {
  this.timeout(120_000);
  const rendered = new Map<string, K8sObject[]>();

  before(() => {
    for (const name of overlays()) rendered.set(name, renderKustomization(path.join(OVERLAYS_DIR, name)));
  });

  it('has the dev and gpu installs, each with its workers overlay', () => {
    expect([...installs(overlays()).entries()]).to.deep.equal([
      ['dev', ['dev', 'dev-workers']],
      ['gpu', ['gpu', 'gpu-workers']],
    ]);
  });

  it('every overlay renders, validates against the schemas and passes the rules; docs and Dockerfiles too', async () => {
    const findings = await checkDeployTree();
    expect(findings.map((f) => `${f.object}: ${f.message}`)).to.deep.equal([]);
  });

  it('gpu: two coordinators spread over nodes, health-probed over gRPC, a ReadWriteMany checkpoint volume', () => {
    const objects = rendered.get('gpu')!;
    const deployment = objects.find(
      (o) => o.kind === 'Deployment' && o.metadata?.name === 'phalanx-coordinator',
    )!;
    expect(deployment.spec?.['replicas']).to.equal(2);
    const c = container(deployment, 'coordinator');
    expect(c['readinessProbe']).to.deep.include({ grpc: { port: 7071 } });
    expect(c['args']).to.include('--health-port=7071');
    const pvc = objects.find((o) => o.kind === 'PersistentVolumeClaim')!;
    expect(pvc.spec?.['accessModes']).to.deep.equal(['ReadWriteMany']);
    expect(objects.map((o) => o.kind)).to.include.members([
      'Namespace',
      'Service',
      'StatefulSet',
      'PodDisruptionBudget',
      'NetworkPolicy',
    ]);
  });

  it('gpu-workers: an Indexed Job of GPU pods that exit with --once and take their rank from the index', () => {
    const job = rendered.get('gpu-workers')!.find((o) => o.kind === 'Job')!;
    expect(job.spec).to.include({ completionMode: 'Indexed', backoffLimitPerIndex: 3, completions: 8 });
    const pod = (job.spec?.['template'] as { spec: Record<string, unknown> }).spec;
    expect(pod['restartPolicy']).to.equal('Never');
    expect(pod['nodeSelector']).to.deep.equal({ 'nvidia.com/gpu.present': 'true' });
    const c = container(job, 'worker');
    expect(c['args']).to.include('--once');
    const resources = c['resources'] as Record<string, Record<string, unknown>>;
    expect(resources['requests']['nvidia.com/gpu']).to.equal(1);
    expect(c['env']).to.deep.include({
      name: 'RANK',
      valueFrom: {
        fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" },
      },
    });
  });

  it("fails on deploy/'s former workers.yaml: OnFailure with backoffLimitPerIndex, no --once, root", async () => {
    const before = parseManifests(readFileSync(path.join(FIXTURES, 'workers-before.yaml'), 'utf8'), 'before');
    const found = messages(await checkObjects(before, ['phalanx']));
    expect(found).to.include('backoffLimitPerIndex requires restartPolicy Never (got OnFailure)');
    expect(found).to.include('container worker: worker runs without --once');
    expect(found).to.include('container worker: runAsNonRoot is not true');
    expect(found).to.include('container worker: image phalanx is not pinned (exact version tag or digest)');
  });

  it('the schemas catch what the rules do not (a required field, a wrong type)', async () => {
    const job = structuredClone(rendered.get('dev-workers')!.find((o) => o.kind === 'Job')!);
    const spec = job.spec as {
      podFailurePolicy: { rules: { onPodConditions?: Record<string, unknown>[] }[] };
    };
    delete spec.podFailurePolicy.rules[0].onPodConditions![0]['status'];
    (job.spec as Record<string, unknown>)['completions'] = 'two';
    expect(messages(await checkObjects([job], ['phalanx']))).to.include.members([
      'schema: /spec/podFailurePolicy/rules/0/onPodConditions/0 must have required property status',
      'schema: /spec/completions must be integer',
    ]);
  });

  it("fails on deploy/'s former Dockerfile: || true after npm ci, and it runs as root", () => {
    const found = messages(checkDockerfileAt(path.join(FIXTURES, 'Dockerfile-before')));
    expect(found).to.include('RUN hides a failure (|| true): a failed step must fail the build');
    expect(found).to.include('the final stage has no USER: the image runs as root');
  });

  it('the Dockerfiles pass; a COPY of a missing or .dockerignored file is caught', () => {
    for (const f of ['Dockerfile', 'worker-gpu.Dockerfile'])
      expect(checkDockerfileAt(path.join(CONTAINER_DIR, f))).to.deep.equal([]);
    const broken =
      'FROM node:20.20.2-bookworm-slim\nCOPY bin ./bin\nCOPY no-such-dir ./x\nUSER 10001\nENTRYPOINT ["node"]\n';
    expect(messages(checkDockerfile('broken', broken, contextAt(REPO)))).to.deep.equal([
      'COPY source no-such-dir does not exist in the build context',
    ]);
    const ignored = broken.replace('no-such-dir', 'src/gen');
    expect(messages(checkDockerfile('ignored', ignored, contextAt(REPO)))).to.deep.equal([
      'COPY source src/gen is excluded by .dockerignore',
    ]);
  });

  it('README "Deploying on Kubernetes": every phalanx command and flag exists, every deploy/ path exists', () => {
    const code = sectionCode(readFileSync(path.join(REPO, 'README.md'), 'utf8'), 'Deploying on Kubernetes');
    expect(code).to.include('kubectl apply -k deploy/kubernetes/overlays/gpu');
    expect(missingReferences(code)).to.deep.equal([]);
    const invocations = phalanxInvocations(code);
    expect(invocations.map((i) => i.command.join(' '))).to.include.members([
      'certs create',
      'submit',
      'watch',
      'token create',
    ]);
    const help = new Map<string, string>();
    for (const { command, flags } of invocations) {
      const key = command.join(' ');
      if (!help.has(key))
        help.set(key, execFileSync(process.execPath, [BIN, ...command, '--help'], { encoding: 'utf8' }));
      for (const flag of flags)
        expect(help.get(key), `phalanx ${key} ${flag}`).to.match(new RegExp(`${flag}\\b`));
    }
  });

  it("the example jobs validate, and their workers.max is the workers' overlay completions and WORLD_SIZE", () => {
    for (const install of ['dev', 'gpu']) {
      const spec = parseJobSpec(readFileSync(path.join(REPO, `deploy/examples/job-${install}.yaml`), 'utf8'));
      const job = rendered.get(`${install}-workers`)!.find((o) => o.kind === 'Job')!;
      expect(spec.workers.max, install).to.equal(job.spec?.['completions']);
      const env = container(job, 'worker')['env'] as { name: string; value?: string }[];
      expect(env.find((e) => e.name === 'WORLD_SIZE')?.value, install).to.equal(String(spec.workers.max));
    }
  });
});
