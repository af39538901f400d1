/**
 * Validates rendered objects against the Kubernetes OpenAPI schemas, offline: the validators that the
 * kubernetes-models package compiles from them (one module per API group/version, one class per kind).
 */
import type { Finding, K8sObject } from './manifestChecks.ts';
import { describe } from './manifestChecks.ts';

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

/** The kubernetes-models module of an apiVersion: `v1` is the core group, `apps/v1` → kubernetes-models/apps/v1. */
function modulePath(apiVersion: string): string {
  return `kubernetes-models/${apiVersion}`;
}

export async function validateSchemas(objects: K8sObject[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const o of objects) {
    const add = (message: string) => findings.push({ object: describe(o), message });
    if (!o.apiVersion || !o.kind) {
      add('apiVersion and kind are required');
      continue;
    }
    let Ctor: ModelClass | undefined;
    try {
      const mod = (await import(modulePath(o.apiVersion))) as Record<string, unknown>;
      Ctor = mod[o.kind] as ModelClass | undefined;
    } catch {
      Ctor = undefined;
    }
    if (typeof Ctor !== 'function') {
      add(`no schema for ${o.apiVersion} ${o.kind} (unknown apiVersion or kind)`);
      continue;
    }
    try {
      new Ctor(o).validate();
    } catch (e) {
      const errors = (e as { errors?: { instancePath?: string; message?: string }[] }).errors;
      if (errors?.length)
        for (const err of errors) add(`schema: ${err.instancePath || '/'} ${err.message ?? ''}`);
      else add(`schema: ${(e as Error).message}`);
    }
  }
  return findings;
}
