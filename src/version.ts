/** wshub's version, as package.json states it (test/unit/package-exports.test.ts checks they agree). */
export const WSHUB_VERSION = '0.1.0';
