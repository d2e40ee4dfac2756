#!/usr/bin/env node
/** The `berth` command: `serve` runs the broker, `worker` runs tasks. Each loads only its own half. */
const HELP = `berth — message broker and task queue

Usage:
  berth serve [options]           run the broker          (berth serve --help)
  berth worker --app MODULE [...] run a task worker       (berth worker --help)
  berth --help                    show this help
`;

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP);
    return;
  }
  if (command === 'serve') return (await import('../server/cli.js')).runServe(rest);
  if (command === 'worker') return (await import('../clients/tasks/cli.js')).runWorker(rest);
  throw new TypeError(`unknown command ${JSON.stringify(command)}; see berth --help`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`berth: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(2);
});
