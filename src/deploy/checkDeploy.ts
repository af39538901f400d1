/**
 * `npm run check:deploy`: renders every overlay of deploy/kubernetes (kubectl kustomize), validates every object
 * against the Kubernetes OpenAPI schemas (offline) and the rules of manifestChecks.ts, checks the Dockerfiles of
 * deploy/container statically, and checks that the docs create every Secret the pods read and name only
 * overlays and files that exist. Exit 1 with one line per finding.
 *   --manifest <file>     check one YAML file instead (its objects alone)
 *   --dockerfile <file>   check one Dockerfile instead (build context: the repository)
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkDockerfile, type BuildContext } from './dockerfileChecks.ts';
import { checkManifests, secretsOf, type Finding, type K8sObject } from './manifestChecks.ts';
import { parseManifests, renderKustomization } from './render.ts';
import { validateSchemas } from './schemaValidation.ts';

export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const OVERLAYS_DIR = path.join(REPO, 'deploy/kubernetes/overlays');
export const CONTAINER_DIR = path.join(REPO, 'deploy/container');

export function overlays(): string[] {
  return readdirSync(OVERLAYS_DIR, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
}

/** A build context on disk: paths relative to `root`, with * and ? in the last segment. */
export function contextAt(root: string): BuildContext {
  const ignoreFile = path.join(root, '.dockerignore');
  const ignored = existsSync(ignoreFile)
    ? readFileSync(ignoreFile, 'utf8')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#'))
    : [];
  return {
    ignored,
    exists(pattern) {
      const rel = pattern.replace(/^\.?\//, '');
      if (!/[*?]/.test(rel)) return existsSync(path.join(root, rel));
      const dir = path.join(root, path.dirname(rel));
      if (!existsSync(dir)) return false;
      const re = new RegExp(
        `^${path
          .basename(rel)
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      );
      return readdirSync(dir).some((f) => re.test(f));
    },
  };
}

export async function checkObjects(objects: K8sObject[], namespaces: string[] = []): Promise<Finding[]> {
  return [...(await validateSchemas(objects)), ...checkManifests(objects, { namespaces })];
}

export function checkDockerfileAt(file: string, root = REPO): Finding[] {
  return checkDockerfile(path.relative(REPO, file) || file, readFileSync(file, 'utf8'), contextAt(root));
}

/** Secrets that `docs` (deploy/README.md and README.md) never create with `kubectl … create secret … <name>`. */
export function undocumentedSecrets(objects: K8sObject[], docs: string): string[] {
  const templates = objects
    .map((o) => (o.spec?.['template'] as { spec?: Record<string, unknown> } | undefined)?.spec)
    .filter((s): s is Record<string, unknown> => s !== undefined);
  const names = new Set(templates.flatMap((s) => secretsOf(s)));
  return [...names].filter((n) => !new RegExp(`create secret \\w+ ${n}\\b`).test(docs));
}

/** Paths under deploy/ that a document names but that do not exist. */
export function missingReferences(text: string): string[] {
  const missing = new Set<string>();
  for (const m of text.matchAll(/(?<![\w/.-])(deploy\/[\w./-]*[\w/])/g)) {
    if (!existsSync(path.join(REPO, m[1]))) missing.add(m[1]);
  }
  return [...missing];
}

/** The code blocks of a `## heading` section of a Markdown document, joined. */
export function sectionCode(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) return '';
  const next = markdown.indexOf('\n## ', start + heading.length + 4);
  const section = markdown.slice(start, next < 0 ? undefined : next);
  return [...section.matchAll(/```\w*\n([\s\S]*?)```/g)].map((m) => m[1]).join('');
}

/** Each `phalanx …` command line of some shell text: its sub-command path and the long flags it passes. */
export function phalanxInvocations(shell: string): { command: string[]; flags: string[] }[] {
  const out: { command: string[]; flags: string[] }[] = [];
  for (const line of shell.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words[0] !== 'phalanx') continue;
    const command: string[] = [];
    for (const w of words.slice(1)) {
      if (!/^[a-z]+$/.test(w) || command.length === 2) break;
      command.push(w);
    }
    const flags = words.filter((w) => /^--[a-z][\w-]*/.test(w)).map((w) => w.split('=')[0]);
    out.push({ command, flags });
  }
  return out;
}

/** Overlays applied together: `<name>` (coordinator side, creates the namespace) and `<name>-workers`. */
export function installs(names: string[]): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const n of names) {
    const install = n.replace(/-workers$/, '');
    groups.set(install, [...(groups.get(install) ?? []), n]);
  }
  return groups;
}

export async function checkDeployTree(): Promise<Finding[]> {
  const findings: Finding[] = [];
  const all: K8sObject[] = [];
  for (const [install, names] of installs(overlays())) {
    const objects: K8sObject[] = [];
    for (const name of names) objects.push(...renderKustomization(path.join(OVERLAYS_DIR, name)));
    for (const f of await checkObjects(objects)) findings.push({ ...f, object: `${install}: ${f.object}` });
    all.push(...objects);
  }
  for (const file of readdirSync(CONTAINER_DIR).filter((f) => /Dockerfile/.test(f))) {
    findings.push(...checkDockerfileAt(path.join(CONTAINER_DIR, file)));
  }
  const deployReadme = readFileSync(path.join(REPO, 'deploy/README.md'), 'utf8');
  const readme = readFileSync(path.join(REPO, 'README.md'), 'utf8');
  for (const s of undocumentedSecrets(all, `${deployReadme}\n${readme}`))
    findings.push({ object: 'deploy/README.md', message: `no 'kubectl create secret' for Secret ${s}` });
  for (const [file, text] of [
    ['README.md', readme],
    ['deploy/README.md', deployReadme],
  ] as const) {
    for (const ref of missingReferences(text))
      findings.push({ object: file, message: `names ${ref}, which does not exist` });
  }
  return findings;
}

async function main(argv: string[]): Promise<number> {
  let findings: Finding[];
  const flag = argv[0];
  if (flag === '--manifest' && argv[1]) {
    const file = argv[1];
    findings = await checkObjects(parseManifests(readFileSync(file, 'utf8'), file));
  } else if (flag === '--dockerfile' && argv[1]) {
    findings = checkDockerfileAt(path.resolve(argv[1]));
  } else if (argv.length === 0) {
    findings = await checkDeployTree();
  } else {
    console.error('usage: check-deploy [--manifest <file.yaml> | --dockerfile <Dockerfile>]');
    return 2;
  }
  for (const f of findings) console.log(`${f.object}: ${f.message}`);
  console.log(findings.length === 0 ? 'deploy: no findings' : `deploy: ${findings.length} finding(s)`);
  return findings.length === 0 ? 0 : 1;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: unknown) => {
      console.error(`check-deploy: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
