// The linux-mips64el package on an emulated MIPS gateway: Debian's
// nodejs:mips64el 18.20.4 under qemu-mips64el, the package's cross-compiled
// addons, Debian's mips64el SoftHSM2 (cases in _cases.ts).
import { test } from 'uvu';
import { registerEmulatedSuite } from './_cases.js';

await registerEmulatedSuite('mips64el');
test.run();
