// Module resolution hooks registered by hide-broker-clients.mjs.
const HIDDEN = /^(redis|@redis\/[^/]+|@nats-io\/[^/]+)(\/|$)/;

export async function resolve(specifier, context, nextResolve) {
  if (HIDDEN.test(specifier)) {
    const name = specifier.startsWith('@')
      ? specifier.split('/').slice(0, 2).join('/')
      : specifier.split('/')[0];
    // The same code and wording as Node's own error for a package that is not installed.
    const error = new Error(
      `Cannot find package '${name}' imported from ${context.parentURL ?? 'the entry point'}`,
    );
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return nextResolve(specifier, context);
}
