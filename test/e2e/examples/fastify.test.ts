import { startFastifyExample } from '../../../examples/fastify.ts';
import { frameworkSuite } from './framework-suite.ts';

frameworkSuite('Fastify 5', startFastifyExample);
