// Reads {nodes, edges} from stdin, loads them into headless Cytoscape.js as the
// dashboard does, and prints what Cytoscape sees. Exits non-zero on any problem.
import cytoscape from "cytoscape";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const elements = JSON.parse(input);

const errors = [];
const origError = console.error;
const origWarn = console.warn;
console.error = (...args) => errors.push(args.join(" "));
console.warn = (...args) => errors.push(args.join(" "));

const cy = cytoscape({ headless: true, elements, styleEnabled: false });
const ids = new Set(cy.nodes().map((n) => n.id()));
const dangling = cy
  .edges()
  .filter((e) => !ids.has(e.data("source")) || !ids.has(e.data("target")))
  .map((e) => e.id());
cy.layout({ name: "breadthfirst" }).run();

console.error = origError;
console.warn = origWarn;
const result = {
  nodes: cy.nodes().length,
  edges: cy.edges().length,
  dangling,
  errors,
  types: [...new Set(cy.nodes().map((n) => n.data("type")))].sort(),
};
process.stdout.write(JSON.stringify(result));
process.exit(errors.length || dangling.length ? 1 : 0);
