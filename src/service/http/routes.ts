export type Route =
  | { name: 'healthz' }
  | { name: 'readyz' }
  | { name: 'metrics' }
  | { name: 'preview' }
  | { name: 'events' }
  | { name: 'snapshot'; camera: string };

export type RouteMatch = { route: Route } | { status: 404; error: string } | { status: 405; allow: string; error: string };

const CAMERA_ID = /^[a-z0-9][a-z0-9_-]*$/i;
const SNAPSHOT = /^\/snapshot\/([^/]+)\.jpg$/;

/** Maps a request line to a route. Only GET and HEAD are served; queries are ignored (`?seq=` defeats caches). */
export function matchRoute(method: string | undefined, rawUrl: string | undefined, opts: { preview: boolean }): RouteMatch {
  const path = pathOf(rawUrl ?? '/');
  const route = routeFor(path, opts.preview);
  if (!route) return { status: 404, error: `no such path: ${path}` };
  if (method !== 'GET' && method !== 'HEAD') return { status: 405, allow: 'GET, HEAD', error: `${method ?? '?'} not allowed on ${path}` };
  return { route };
}

function pathOf(rawUrl: string): string {
  const q = rawUrl.indexOf('?');
  return q >= 0 ? rawUrl.slice(0, q) : rawUrl;
}

function routeFor(path: string, preview: boolean): Route | undefined {
  switch (path) {
    case '/healthz':
      return { name: 'healthz' };
    case '/readyz':
      return { name: 'readyz' };
    case '/metrics':
      return { name: 'metrics' };
  }
  if (!preview) return undefined;
  if (path === '/' || path === '/index.html') return { name: 'preview' };
  if (path === '/events') return { name: 'events' };
  const m = SNAPSHOT.exec(path);
  if (!m) return undefined;
  let camera: string;
  try {
    camera = decodeURIComponent(m[1]!);
  } catch {
    return undefined;
  }
  return CAMERA_ID.test(camera) ? { name: 'snapshot', camera } : undefined;
}
