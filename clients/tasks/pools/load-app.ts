/** Finds the task app a module exports: `app`, the default export, or the only exported app. */
import { isApp, type App } from '../app.js';
import { TaskError } from '../errors.js';

export async function loadApp(moduleSpecifier: string): Promise<App> {
  const [path, exportName] = splitSpecifier(moduleSpecifier);
  const mod = (await import(path)) as Record<string, unknown>;
  if (exportName !== undefined) {
    const named = mod[exportName];
    if (!isApp(named)) throw new TaskError('E_TASK_INVALID', `${path} exports no task app named ${JSON.stringify(exportName)}`);
    return named;
  }
  for (const key of ['app', 'default']) if (isApp(mod[key])) return mod[key] as App;
  const apps = Object.values(mod).filter(isApp);
  if (apps.length === 1) return apps[0] as App;
  throw new TaskError(
    'E_TASK_INVALID',
    apps.length === 0
      ? `${path} exports no task app: export the result of createApp() as "app" or as the default export`
      : `${path} exports ${apps.length} task apps: name one as MODULE:EXPORT`,
  );
}

/** `./tasks.js:app` → [url of ./tasks.js, 'app']; `file:` URLs and absolute paths pass through. */
function splitSpecifier(specifier: string): [string, string | undefined] {
  const colon = specifier.lastIndexOf(':');
  // A colon after the last slash names an export; `file:///x` and `C:\x` do not.
  if (colon > specifier.lastIndexOf('/') && colon > 1) return [specifier.slice(0, colon), specifier.slice(colon + 1)];
  return [specifier, undefined];
}
