// The runtime version: injected by the esbuild bundle, read from package.json when run from source.
import { readFileSync } from 'node:fs';

declare const __ISCM_VERSION__: string | undefined;

export function version(): string {
  if (typeof __ISCM_VERSION__ === 'string') return __ISCM_VERSION__;
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0-unknown';
  }
}
