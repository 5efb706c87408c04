// Every CLI verb, one file each. Order = order in --help. A verb's file is loaded only when
// the command line names it (all of them for the full --help or an unknown verb), so a
// command loads what it uses and nothing of the other verbs.
import type { RegisterVerb } from '../context.ts';

export interface Verb {
  /** The verb, then its aliases, exactly as its file registers them. */
  names: string[];
  load(): Promise<{ register: RegisterVerb }>;
}

export const verbs: Verb[] = [
  { names: ['conf'], load: () => import('./conf.ts') },
  { names: ['create'], load: () => import('./create.ts') },
  { names: ['set'], load: () => import('./set.ts') },
  { names: ['start'], load: () => import('./start.ts') },
  { names: ['stop'], load: () => import('./stop.ts') },
  { names: ['restart'], load: () => import('./restart.ts') },
  { names: ['remove', 'rm'], load: () => import('./remove.ts') },
  { names: ['apply'], load: () => import('./apply.ts') },
  { names: ['recipe'], load: () => import('./recipe.ts') },
  { names: ['exec'], load: () => import('./exec.ts') },
  { names: ['logs'], load: () => import('./logs.ts') },
  { names: ['ls'], load: () => import('./ls.ts') },
  { names: ['ports'], load: () => import('./ports.ts') },
  { names: ['skel'], load: () => import('./skel.ts') },
  { names: ['upgrade'], load: () => import('./upgrade.ts') },
  { names: ['export'], load: () => import('./export.ts') },
  { names: ['import'], load: () => import('./import.ts') },
  { names: ['clone'], load: () => import('./clone.ts') },
  { names: ['snapshot'], load: () => import('./snapshot.ts') },
  { names: ['reconcile'], load: () => import('./reconcile.ts') },
  { names: ['sysctl'], load: () => import('./sysctl.ts') },
  { names: ['serve'], load: () => import('./serve.ts') },
  { names: ['nodes'], load: () => import('./nodes.ts') },
  { names: ['lb'], load: () => import('./lb.ts') },
  { names: ['rollout'], load: () => import('./rollout.ts') },
  { names: ['quickstart'], load: () => import('./quickstart.ts') },
  { names: ['jail'], load: async () => ({ register: (await import('../freebsd/verbs.ts')).registerJail }) },
  { names: ['jls'], load: async () => ({ register: (await import('../freebsd/verbs.ts')).registerJls }) },
  { names: ['jexec'], load: async () => ({ register: (await import('../freebsd/verbs.ts')).registerJexec }) },
];

/**
 * The verbs a command line needs: the one named by its first word after the global options
 * (--state, --host, which take a value), else every verb (help, an unknown verb: commander
 * lists them or suggests one).
 */
export function verbsFor(argv: readonly string[]): Verb[] {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--state' || a === '--host') i++;
    else if (a.startsWith('--state=') || a.startsWith('--host=')) continue;
    else {
      const verb = a.startsWith('-') ? undefined : verbs.find((v) => v.names.includes(a));
      return verb ? [verb] : verbs;
    }
  }
  return verbs;
}
