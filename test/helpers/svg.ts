/**
 * A small well-formedness check for the SVG that `bench --chart` writes (no XML parser is a
 * dependency): every tag closes in order, attributes are quoted, text has no stray `<` or `&`.
 * Returns the elements in document order, with their attributes.
 */
export interface SvgElement {
  name: string;
  attrs: Record<string, string>;
  text: string;
}

const TAG = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
const ATTR = /([\w:-]+)="([^"<]*)"/g;
const ENTITY = /&(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/g;

export function parseSvg(svg: string): SvgElement[] {
  const elements: SvgElement[] = [];
  const open: SvgElement[] = [];
  let i = 0;
  const body = svg.trim();
  while (i < body.length) {
    const lt = body.indexOf('<', i);
    const text = body.slice(i, lt === -1 ? body.length : lt);
    if (text.replace(ENTITY, '').includes('&')) throw new Error(`unescaped & in text near offset ${i}`);
    if (text.trim() && open.length === 0) throw new Error(`text outside the root element near offset ${i}`);
    if (open.length > 0) open[open.length - 1]!.text += text;
    if (lt === -1) break;
    TAG.lastIndex = lt;
    const m = TAG.exec(body);
    if (!m) throw new Error(`malformed tag near offset ${lt}: ${body.slice(lt, lt + 60)}`);
    const [whole, closing, name, attrText, selfClosing] = m;
    if (closing) {
      const top = open.pop();
      if (top?.name !== name) throw new Error(`</${name}> closes <${top?.name ?? 'nothing'}>`);
    } else {
      const attrs: Record<string, string> = {};
      for (const a of attrText!.matchAll(ATTR)) {
        if (a[2]!.replace(ENTITY, '').includes('&')) throw new Error(`unescaped & in attribute ${a[1]}`);
        attrs[a[1]!] = a[2]!;
      }
      const el = { name: name!, attrs, text: '' };
      if (elements.length > 0 && open.length === 0) throw new Error('more than one root element');
      elements.push(el);
      if (!selfClosing) open.push(el);
    }
    i = lt + whole.length;
  }
  if (open.length > 0) throw new Error(`unclosed <${open.map((e) => e.name).join('>, <')}>`);
  if (elements[0]?.name !== 'svg') throw new Error('the root element is not <svg>');
  return elements;
}

/** The points of a polyline's `points` attribute. */
export function polylinePoints(el: SvgElement): [number, number][] {
  return (el.attrs.points ?? '')
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => p.split(',').map(Number) as [number, number]);
}

/** Undoes the five XML entities (what a reader sees). */
export function xmlText(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|apos);/g, (_, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" })[e]!);
}
