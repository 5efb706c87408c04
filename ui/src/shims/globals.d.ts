// The one Node global the shared pure modules name (src/meta/ops.ts counts buffer bytes with
// it); the dashboard never calls those functions, the daemon does.
declare const Buffer: { byteLength(text: string): number };
