/** Entry point used when running the command from source (tests): `node --import tsx src/cli/run.ts`. */
import { main } from './main.ts';

process.exitCode = await main(process.argv.slice(2));
