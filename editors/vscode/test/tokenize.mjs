// Tokenise .cnn files with VS Code's own TextMate engine (vscode-textmate + Oniguruma) and
// print, per file, every token that has no scope beyond source.cnn or an invalid scope,
// as JSON: {"file": [[line, column, text, scopes], ...]}. tests/test_lexer.py runs it.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");
const here = dirname(fileURLToPath(import.meta.url));
const wasm = readFileSync(join(dirname(require.resolve("vscode-oniguruma")), "onig.wasm"));
await oniguruma.loadWASM(wasm.buffer);
const registry = new vsctm.Registry({
  onigLib: Promise.resolve({
    createOnigScanner: (p) => new oniguruma.OnigScanner(p),
    createOnigString: (s) => new oniguruma.OnigString(s),
  }),
  loadGrammar: async () => vsctm.parseRawGrammar(
    readFileSync(join(here, "..", "syntaxes", "cnnspec.tmLanguage.json"), "utf8"),
    "cnnspec.tmLanguage.json"),
});
const grammar = await registry.loadGrammar("source.cnn");
const out = {};
for (const file of process.argv.slice(2)) {
  const bad = [];
  let counts = {};
  let state = vsctm.INITIAL;
  readFileSync(file, "utf8").split(/\r?\n/).forEach((line, i) => {
    const r = grammar.tokenizeLine(line, state);
    for (const t of r.tokens) {
      const text = line.slice(t.startIndex, t.endIndex);
      const scope = t.scopes[t.scopes.length - 1];
      if (text.trim() === "") continue;
      counts[scope] = (counts[scope] || 0) + 1;
      if (t.scopes.length < 2 || scope.startsWith("invalid")) {
        bad.push([i + 1, t.startIndex + 1, text, t.scopes]);
      }
    }
    state = r.ruleStack;
  });
  out[file] = { bad, counts };
}
process.stdout.write(JSON.stringify(out));
