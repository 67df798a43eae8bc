// JSON values handed to the manager: the sorted, checked copy a payload or result is kept as, and
// the checked JSON text of a value that crosses into the core as text (a snapshot). Both follow
// the core's rules for JSON values: what JSON cannot carry is refused, object keys come out in
// the order the core writes them, and the core's limits on depth and size hold.
import { wellFormed } from './surrogates.js';

/** JSON text for a value crossing into the core as text (a snapshot; a payload JSON has to carry). */
export function toJson(value, name) {
  let text;
  try {
    text = JSON.stringify(value === undefined ? null : value);
  } catch (e) {
    const why = e instanceof RangeError ? 'nesting too deep' : e.message;
    throw new TypeError(`${name} is not JSON-serializable: ${why}`, { cause: e });
  }
  if (text === undefined) throw new TypeError(`${name} is not JSON-serializable (${typeof value})`);
  // JSON.stringify writes a lone surrogate as a \udXXX escape; only then is the slow scan needed.
  if (text.includes('\\ud') && hasLoneSurrogateEscape(text)) throw new TypeError(`${name} contains a lone UTF-16 surrogate`);
  return text;
}

function isHex4(text, i) {
  return /^[0-9a-fA-F]{4}$/.test(text.slice(i, i + 4));
}

// Walks the escapes of JSON text: a \uD800-\uDBFF escape must be followed by a \uDC00-\uDFFF one.
function hasLoneSurrogateEscape(text) {
  for (let i = 0; i < text.length; i++) {
    if (text[i] !== '\\') continue;
    if (text[i + 1] !== 'u' || !isHex4(text, i + 2)) {
      i++; // any other escape: skip the escaped character
      continue;
    }
    const unit = parseInt(text.slice(i + 2, i + 6), 16);
    if (unit >= 0xdc00 && unit <= 0xdfff) return true;
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text[i + 6] === '\\' && text[i + 7] === 'u' && isHex4(text, i + 8) ? parseInt(text.slice(i + 8, i + 12), 16) : -1;
      if (next < 0xdc00 || next > 0xdfff) return true;
      i += 11;
      continue;
    }
    i += 5;
  }
  return false;
}

// ---- payloads and results kept on the JS side (ctx.emit, a body's result) ----------------------
// The limits are the core's (core/include/bgtasks/codec.hpp: kMaxJsonDepth, kMaxSnapshotBytes),
// read from the module by the manager and passed in as `limits` = {depth, bytes}.

const NOT_PLAIN = Symbol('not plain JSON data');
const HAS_LONE_SURROGATE = Symbol('lone surrogate');

// A copy of plain JSON data (null, booleans, finite numbers, well-formed strings, arrays and plain
// objects of those, containers at most maxDepth levels below the root) with object keys sorted
// as the core writes them; copyBytes grows by an upper bound of its JSON text. NOT_PLAIN when
// only its JSON form can tell (class instances, toJSON, undefined members, cycles, deeper
// nesting); HAS_LONE_SURROGATE for a lone surrogate in a string or key. Hot (every ctx.emit):
// a counter instead of an accumulator object, and a plain object's keys sorted once per shape.
let copyBytes = 0;
function plainCopy(v, depth, maxDepth) {
  switch (typeof v) {
    case 'string':
      if (!wellFormed(v)) return HAS_LONE_SURROGATE;
      copyBytes += v.length * 6 + 2; // \u00XX: at most 6 bytes per UTF-16 unit
      return v;
    case 'number':
      if (!Number.isFinite(v)) return NOT_PLAIN;
      copyBytes += 24;
      return v === 0 ? 0 : v; // -0 is 0 in JSON
    case 'boolean':
      copyBytes += 5;
      return v;
    case 'object': {
      if (v === null) {
        copyBytes += 4;
        return v;
      }
      if (depth > maxDepth) return NOT_PLAIN;
      copyBytes += 2;
      if (Array.isArray(v)) {
        if (Object.getPrototypeOf(v) !== Array.prototype) return NOT_PLAIN;
        const n = v.length;
        const out = new Array(n);
        for (let i = 0; i < n; i++) {
          const c = plainCopy(v[i], depth + 1, maxDepth);
          if (typeof c === 'symbol') return c;
          out[i] = c;
        }
        copyBytes += n;
        return out;
      }
      const proto = Object.getPrototypeOf(v);
      // A toJSON method makes JSON.stringify write something else; a toJSON key holding data does not.
      if ((proto !== Object.prototype && proto !== null) || typeof v.toJSON === 'function') return NOT_PLAIN;
      const keys = Object.keys(v); // own enumerable keys, as JSON.stringify takes them
      if (keys.length === 0) return {};
      const shape = shapeOf(keys);
      if (shape === HAS_LONE_SURROGATE) return shape;
      copyBytes += shape.keyBytes;
      return shape.copy !== null ? shape.copy(v, shape.sorted, depth + 1, maxDepth) : copyObject(v, shape, depth + 1, maxDepth);
    }
    default:
      return NOT_PLAIN; // undefined, function, symbol, bigint
  }
}

// ---- shapes: key lists sorted once --------------------------------------------------------------
// A payload's objects mostly repeat a few key lists ({step, pct} per progress event). A shape is
// one key list as Object.keys gives it, with its keys sorted as the core writes them and checked
// for lone surrogates, so a repeated key list is sorted and checked once, and its copier (below).
// No copier is generated (`new Function`): a page or extension under a Content-Security-Policy
// without 'unsafe-eval' refuses that and reports each attempt. What the table pins is bounded: it
// is dropped all at once when MAX_SHAPES are kept, and a key list longer than MAX_SHAPE_CHARS is
// not kept.

const MAX_SHAPES = 1024;
const MAX_SHAPE_CHARS = 1024; // UTF-16 units of all the keys of a kept shape
const shapes = new Map(); // first key -> shapes
let shapeCount = 0;
let lastShape = null;

// Object keys in the order the core writes them (nlohmann's; docs/awaken-differences.md, "Events,
// values and strings"): by code point, i.e. by UTF-8 bytes. UTF-16 code unit order differs from it
// only between a surrogate (an astral character) and U+E000..U+FFFF.
function compareKeys(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && x <= 0xdfff && y >= 0xe000) return 1;
    if (y >= 0xd800 && y <= 0xdfff && x >= 0xe000) return -1;
    return x - y;
  }
  return a.length - b.length;
}

function sameKeys(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function findShape(keys) {
  const list = shapes.get(keys[0]);
  if (list !== undefined) {
    for (let i = 0; i < list.length; i++) if (sameKeys(list[i].keys, keys)) return list[i];
  }
  return null;
}

// The shape of an object with these (non-empty) keys, or HAS_LONE_SURROGATE for a lone surrogate
// in a key (refused, whatever the key's value: see surrogates.js).
function shapeOf(keys) {
  if (lastShape !== null && sameKeys(lastShape.keys, keys)) return lastShape;
  const found = findShape(keys);
  if (found !== null) return (lastShape = found);
  for (let i = 0; i < keys.length; i++) if (!wellFormed(keys[i])) return HAS_LONE_SURROGATE;
  const sorted = keys.slice().sort(compareKeys);
  let keyBytes = 0;
  let chars = 0;
  for (let i = 0; i < sorted.length; i++) {
    keyBytes += sorted[i].length * 6 + 4;
    chars += sorted[i].length;
  }
  const shape = { keys, sorted, keyBytes, hasProtoKey: sorted.includes('__proto__'), copy: null };
  if (chars > MAX_SHAPE_CHARS) return shape;
  const n = sorted.length;
  if (n <= COPIERS.length && !shape.hasProtoKey && copiersUsed[n - 1] < COPIERS[n - 1].length) shape.copy = COPIERS[n - 1][copiersUsed[n - 1]++];
  if (shapeCount === MAX_SHAPES) {
    shapes.clear();
    shapeCount = 0;
  }
  const list = shapes.get(keys[0]);
  if (list === undefined) shapes.set(keys[0], [shape]);
  else list.push(shape);
  shapeCount++;
  return (lastShape = shape);
}

// ---- copiers for the first key lists of each size: monomorphic without generated code ---------
// A copier shared by every key list reads and writes whatever keys it is given, so V8's caches at
// its property accesses see many names and go megamorphic (a copy of {step, pct} then costs about
// twice a literal's). Each function below is its own function literal, so it has its own caches:
// handed to one key list (of 1 to 4 keys), its reads and writes see one name each and stay as fast
// as a literal's, with no `new Function`. Four of them per size; later key lists, longer ones and
// those with a "__proto__" key take copyObject.
// prettier-ignore
const COPIERS = [
  [ // 1 key
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const out = {};
      out[k[0]] = c0;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const out = {};
      out[k[0]] = c0;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const out = {};
      out[k[0]] = c0;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const out = {};
      out[k[0]] = c0;
      return out;
    },
  ],
  [ // 2 keys
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      return out;
    },
  ],
  [ // 3 keys
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      return out;
    },
  ],
  [ // 4 keys
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const c3 = plainCopy(v[k[3]], depth, maxDepth);
      if (typeof c3 === 'symbol') return c3;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      out[k[3]] = c3;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const c3 = plainCopy(v[k[3]], depth, maxDepth);
      if (typeof c3 === 'symbol') return c3;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      out[k[3]] = c3;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const c3 = plainCopy(v[k[3]], depth, maxDepth);
      if (typeof c3 === 'symbol') return c3;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      out[k[3]] = c3;
      return out;
    },
    (v, k, depth, maxDepth) => {
      const c0 = plainCopy(v[k[0]], depth, maxDepth);
      if (typeof c0 === 'symbol') return c0;
      const c1 = plainCopy(v[k[1]], depth, maxDepth);
      if (typeof c1 === 'symbol') return c1;
      const c2 = plainCopy(v[k[2]], depth, maxDepth);
      if (typeof c2 === 'symbol') return c2;
      const c3 = plainCopy(v[k[3]], depth, maxDepth);
      if (typeof c3 === 'symbol') return c3;
      const out = {};
      out[k[0]] = c0;
      out[k[1]] = c1;
      out[k[2]] = c2;
      out[k[3]] = c3;
      return out;
    },
  ],
];
const copiersUsed = [0, 0, 0, 0];

// A plain object's copy: keys in their sorted order.
function copyObject(v, shape, depth, maxDepth) {
  const sorted = shape.sorted;
  const out = {};
  for (let i = 0; i < sorted.length; i++) {
    const k = sorted[i];
    const c = plainCopy(v[k], depth, maxDepth);
    if (typeof c === 'symbol') return c;
    // An own "__proto__" key (JSON.parse makes one) must stay a key, not set the prototype.
    if (shape.hasProtoKey && k === '__proto__') Object.defineProperty(out, k, { value: c, enumerable: true, writable: true, configurable: true });
    else out[k] = c;
  }
  return out;
}

function utf8Length(text) {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0x80) bytes += c >= 0x800 && (c < 0xd800 || c > 0xdfff) ? 2 : 1; // a pair: 4 bytes for 2 units
  }
  return bytes;
}

// The nesting of JSON text counted as the core counts it (root container at level 0).
function jsonDepthExceeds(text, max) {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max + 1) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

/**
 * The value an emitted payload (or a result) is kept as (it stays on the JS side; the core holds
 * its handle), under the core's limits for JSON values: a copy with object keys sorted as the core
 * sorts them, so a drained payload is what a round trip through the core would give —
 * `JSON.parse(JSON.stringify(p))` with sorted keys (a Date becomes its string, undefined members
 * vanish, `undefined` is null) — and a change to `p` after emit does not show. TypeError: not
 * JSON-serializable (BigInt, cycles), a lone surrogate, nesting deeper than 128 levels, or JSON
 * text over 64 MiB.
 */
export function payloadValue(value, name, limits) {
  if (value === undefined) return null;
  const outer = copyBytes; // a getter inside a payload may itself emit: keep the outer count
  copyBytes = 0;
  let copy;
  try {
    copy = plainCopy(value, 0, limits.depth);
  } catch {
    copy = NOT_PLAIN; // a throwing getter or proxy: JSON.stringify below reports it as before
  }
  const bound = copyBytes;
  copyBytes = outer;
  if (copy === HAS_LONE_SURROGATE) {
    toJson(value, name); // its error (not JSON-serializable) comes first, as JSON.stringify finds it
    throw new TypeError(`${name} contains a lone UTF-16 surrogate`);
  }
  if (copy !== NOT_PLAIN && bound <= limits.bytes) return copy;
  const text = toJson(value, name);
  if (text.length * 3 > limits.bytes) {
    const bytes = utf8Length(text);
    if (bytes > limits.bytes) throw new TypeError(`${name}: ${bytes} bytes exceeds the limit of ${limits.bytes}`);
  }
  if (jsonDepthExceeds(text, limits.depth)) throw new TypeError(`${name}: nesting deeper than ${limits.depth} levels`);
  if (copy !== NOT_PLAIN) return copy; // plain data whose size bound overshot: within the limit after all
  // Anything else becomes its JSON form, then a sorted copy of that (plain data now).
  const parsed = JSON.parse(text);
  const sorted = plainCopy(parsed, 0, limits.depth);
  return typeof sorted === 'symbol' ? parsed : sorted;
}
