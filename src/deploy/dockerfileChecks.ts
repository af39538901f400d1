/**
 * Static checks of a Dockerfile, for machines where no image can be built: every COPY/ADD source exists in the
 * build context (and is not excluded by .dockerignore), no RUN hides a failure (`|| true`), every base image is
 * pinned (exact version tag or digest), and the final stage runs as a non-root USER with an ENTRYPOINT. Pure:
 * the file's text and a view of the build context in, findings out.
 */
import type { Finding } from './manifestChecks.ts';
import { isPinnedImage } from './manifestChecks.ts';

export interface Instruction {
  line: number;
  keyword: string;
  args: string;
}

/** Instructions with their continuation lines joined; comments and blank lines dropped. */
export function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i];
    if (/^\s*(#|$)/.test(line)) continue;
    while (/\\\s*$/.test(line) && i + 1 < lines.length) {
      i++;
      const next = lines[i];
      if (/^\s*#/.test(next)) continue;
      line = line.replace(/\\\s*$/, ' ') + next;
    }
    const m = /^\s*(\w+)\s*(.*)$/s.exec(line);
    if (m) out.push({ line: start + 1, keyword: m[1].toUpperCase(), args: m[2].trim() });
  }
  return out;
}

export interface BuildContext {
  /** Whether a path (relative to the context root, may contain * and ?) matches at least one file or directory. */
  exists(pattern: string): boolean;
  /** .dockerignore patterns of the context. */
  ignored: string[];
}

function substitute(text: string, args: Map<string, string>): string {
  return text.replace(/\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)/g, (_m, a: string, dflt: string, b: string) => {
    const name = a ?? b;
    return args.get(name) ?? dflt ?? '';
  });
}

function words(args: string): string[] {
  if (args.startsWith('[')) {
    try {
      return (JSON.parse(args) as unknown[]).map(String);
    } catch {
      return [args];
    }
  }
  return args.split(/\s+/).filter(Boolean);
}

/** A .dockerignore glob as a regular expression source: ** any path, * one segment's characters, ? one. */
function globToRegExp(glob: string): string {
  return glob
    .split('**')
    .map((part) =>
      part
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]'),
    )
    .join('.*');
}

function isIgnored(path: string, ignored: string[]): boolean {
  const clean = path.replace(/^\.\//, '').replace(/\/$/, '');
  let result = false;
  for (const raw of ignored) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/^\.?\//, '').replace(/\/$/, '');
    const re = new RegExp(`^${globToRegExp(pattern)}(/.*)?$`);
    if (re.test(clean)) result = !negate;
  }
  return result;
}

export function checkDockerfile(file: string, text: string, context: BuildContext): Finding[] {
  const findings: Finding[] = [];
  const add = (line: number, message: string) => findings.push({ object: `${file}:${line}`, message });
  const instructions = parseDockerfile(text);
  const globalArgs = new Map<string, string>();
  const stages: string[] = [];
  let stageArgs = new Map<string, string>();
  let user: string | undefined;
  let entrypoint = false;
  let seenFrom = false;

  for (const ins of instructions) {
    const { keyword, line } = ins;
    if (keyword === 'ARG') {
      const [name, ...value] = ins.args.split('=');
      const target = seenFrom ? stageArgs : globalArgs;
      const v = value.join('=').replace(/^["']|["']$/g, '');
      if (value.length > 0) target.set(name.trim(), substitute(v, target));
      else if (seenFrom && globalArgs.has(name.trim()))
        stageArgs.set(name.trim(), globalArgs.get(name.trim())!);
      continue;
    }
    if (keyword === 'FROM') {
      seenFrom = true;
      stageArgs = new Map();
      user = undefined;
      entrypoint = false;
      const parts = ins.args.split(/\s+/).filter((p) => !p.startsWith('--platform'));
      const image = substitute(parts[0] ?? '', globalArgs);
      const alias = /^as$/i.test(parts[1] ?? '') ? parts[2] : undefined;
      if (!image) add(line, 'FROM without an image');
      else if (!stages.includes(image) && image !== 'scratch' && !isPinnedImage(image))
        add(line, `base image ${image} is not pinned (exact version tag or @sha256 digest)`);
      if (alias) stages.push(alias);
      continue;
    }
    if (keyword === 'RUN') {
      if (/\|\|\s*(true|:)\b|\|\|\s*:\s*$|\|\|\s*exit\s+0/.test(ins.args))
        add(line, 'RUN hides a failure (|| true): a failed step must fail the build');
      if (
        /npm\s+(?:ci|install)\b[^&;|]*(?:&&|;)\s*npm\s+(?:install-scripts|approve-scripts)\s+approve/.test(
          ins.args,
        )
      )
        add(line, 'install scripts are approved after npm ci ran: pass --allow-scripts to npm ci instead');
      continue;
    }
    if (keyword === 'USER') {
      user = substitute(ins.args, new Map([...globalArgs, ...stageArgs])).split(':')[0];
      continue;
    }
    if (keyword === 'ENTRYPOINT') {
      entrypoint = true;
      continue;
    }
    if (keyword === 'COPY' || keyword === 'ADD') {
      const w = words(ins.args.replace(/^(--[\w-]+(=\S+)?\s+)+/, ''));
      const flags = ins.args.match(/--[\w-]+(=\S+)?/g) ?? [];
      if (flags.some((f) => f.startsWith('--from'))) continue;
      for (const source of w.slice(0, -1)) {
        const s = substitute(source, new Map([...globalArgs, ...stageArgs]));
        if (/^https?:\/\//.test(s)) continue;
        if (!context.exists(s)) add(line, `${keyword} source ${s} does not exist in the build context`);
        else if (isIgnored(s, context.ignored))
          add(line, `${keyword} source ${s} is excluded by .dockerignore`);
      }
    }
  }
  if (!seenFrom) add(1, 'no FROM');
  if (user === undefined)
    add(instructions.at(-1)?.line ?? 1, 'the final stage has no USER: the image runs as root');
  else if (user === 'root' || user === '0')
    add(instructions.at(-1)?.line ?? 1, `the final stage runs as ${user}`);
  if (!entrypoint) add(instructions.at(-1)?.line ?? 1, 'the final stage has no ENTRYPOINT');
  return findings;
}
