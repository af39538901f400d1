/** Renders a kustomize directory with `kubectl kustomize` (kustomize built into kubectl) into objects. */
import { execFileSync } from 'node:child_process';
import { parseAllDocuments } from 'yaml';
import type { K8sObject } from './manifestChecks.ts';

export class RenderError extends Error {}

export function parseManifests(text: string, source: string): K8sObject[] {
  const objects: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new RenderError(`${source}: ${doc.errors[0].message}`);
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value))
      throw new RenderError(`${source}: a document is not a Kubernetes object`);
    objects.push(value as K8sObject);
  }
  return objects;
}

export function renderKustomization(dir: string): K8sObject[] {
  let text: string;
  try {
    text = execFileSync('kubectl', ['kustomize', dir], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new RenderError(
        'kubectl not found: install kubectl (it includes kustomize) to render deploy/kubernetes',
      );
    throw new RenderError(`kubectl kustomize ${dir} failed: ${(err.stderr ?? err.message).trim()}`);
  }
  return parseManifests(text, dir);
}
