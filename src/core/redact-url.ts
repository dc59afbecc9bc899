/**
 * The URL as it may appear in logs and errors: no user:password, and no query string or
 * fragment (signed URLs carry their secrets there); the path stays, it names the file.
 */
export function redactUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '<invalid URL>';
  }
  const hadQuery = u.search.length > 0;
  u.username = '';
  u.password = '';
  u.search = '';
  u.hash = '';
  return hadQuery ? `${u.href}?<redacted>` : u.href;
}
