import { startExpressExample } from '../../../examples/express.ts';
import { frameworkSuite } from './framework-suite.ts';

frameworkSuite('Express 5', startExpressExample);
