// Lone UTF-16 surrogates: the test every string crossing into the core passes, and the repair for
// texts that must cross anyway (a failed body's error text).
//
// Embind turns a lone surrogate into U+FFFD on its way into the core without a word, so a string
// holding one is refused instead (docs/awaken-differences.md, "Events, values and strings").

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const LONE_SURROGATES = new RegExp(LONE_SURROGATE.source, 'g');

/** True when `s` holds no lone surrogate (String.prototype.isWellFormed). */
export const wellFormed =
  typeof String.prototype.isWellFormed === 'function' ? (s) => s.isWellFormed() : (s) => !LONE_SURROGATE.test(s);

/** `s` with each lone surrogate replaced by U+FFFD, as String.prototype.toWellFormed does. */
export const toWellFormed =
  typeof String.prototype.toWellFormed === 'function' ? (s) => s.toWellFormed() : (s) => s.replace(LONE_SURROGATES, '\uFFFD');
