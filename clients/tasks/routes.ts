/**
 * Routing of task names to queues, like Celery's `task_routes`: keys are exact names or globs
 * (`*` matches any run of characters, `?` one character), values a queue name or `{ queue, priority }`.
 * An exact key wins; otherwise the first matching glob in insertion order.
 */
import { TaskError } from './errors.js';

export interface Route {
  queue: string;
  priority?: number;
}

export type Routes = Record<string, string | Route>;

interface CompiledRoute {
  pattern: RegExp;
  route: Route;
}

export interface Router {
  /** The route of a task name, or undefined when no key matches. */
  route(taskName: string): Route | undefined;
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const ch of glob) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

function normalize(key: string, value: string | Route): Route {
  const route = typeof value === 'string' ? { queue: value } : value;
  if (typeof route.queue !== 'string' || route.queue === '') {
    throw new TaskError('E_TASK_INVALID', `routes[${JSON.stringify(key)}] must name a queue`);
  }
  return route;
}

export function createRouter(routes: Routes = {}): Router {
  const exact = new Map<string, Route>();
  const globs: CompiledRoute[] = [];
  for (const [key, value] of Object.entries(routes)) {
    const route = normalize(key, value);
    if (/[*?]/.test(key)) globs.push({ pattern: globToRegExp(key), route });
    else exact.set(key, route);
  }
  return {
    route(taskName) {
      const hit = exact.get(taskName);
      if (hit !== undefined) return hit;
      for (const { pattern, route } of globs) if (pattern.test(taskName)) return route;
      return undefined;
    },
  };
}
