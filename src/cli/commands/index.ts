// Every CLI verb, one file each. Order = order in --help.
import { register as conf } from './conf.ts';
import { register as create } from './create.ts';
import { register as set } from './set.ts';
import { register as start } from './start.ts';
import { register as stop } from './stop.ts';
import { register as restart } from './restart.ts';
import { register as remove_ } from './remove.ts';
import { register as apply } from './apply.ts';
import { register as exec } from './exec.ts';
import { register as ls } from './ls.ts';
import { register as skel } from './skel.ts';
import { register as upgrade } from './upgrade.ts';
import { register as reconcile } from './reconcile.ts';
import { register as sysctl } from './sysctl.ts';
import { register as serve } from './serve.ts';
import { register as lb } from './lb.ts';
import { register as rollout } from './rollout.ts';
import { register as quickstart } from './quickstart.ts';
import type { RegisterVerb } from '../context.ts';

export const verbs: RegisterVerb[] = [
  conf,
  create,
  set,
  start,
  stop,
  restart,
  remove_,
  apply,
  exec,
  ls,
  skel,
  upgrade,
  reconcile,
  sysctl,
  serve,
  lb,
  rollout,
  quickstart,
];
