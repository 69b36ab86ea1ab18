// The storage conformance suite against the in-memory store (devnet, unit tests).
import { suite } from 'uvu';
import { MemoryKv } from '../../ledger/store/memory-kv.js';
import { conformance } from './_conformance.js';

const s = suite('memory store');
conformance(s, async (limits) => new MemoryKv(limits));
s.run();
