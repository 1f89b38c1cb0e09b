// Loaded with `node --import`: makes the `redis` and `@nats-io/*` packages look
// uninstalled for the whole process (the hooks in the sibling file answer
// ERR_MODULE_NOT_FOUND for them), so a test can check that a code path never
// needs them, and how wshub reports them missing.
import { register } from 'node:module';

register('./hide-broker-clients-hooks.mjs', import.meta.url);
