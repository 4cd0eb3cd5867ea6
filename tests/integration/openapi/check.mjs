// Checks an OpenAPI 3.1 document and the answers a test received against it,
// with third-party validators, so retain's document is held to the standard
// and its servers to the document:
//
//   node check.mjs <openapi.json> <answers.jsonl>
//
// The document is validated against the OpenAPI 3.1 schema by
// @seriousme/openapi-schema-validator. Each line of answers.jsonl is
// {"method", "path" (the document's path template), "status", "type"
// (Content-Type), "body" (text)}; each must be a response the document
// describes for that operation (its status, else "default"), with that
// media type, and its body must match the response's schema (a JSON body
// parsed, any other, text/plain or text/event-stream, as the string it
// is), checked by ajv's JSON Schema 2020-12 validator (OpenAPI 3.1's
// schema dialect) with ajv-formats. Exits 0 when everything holds, 1
// listing what does not.
import { readFileSync } from "node:fs";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const [docPath, answersPath] = process.argv.slice(2);
if (!docPath || !answersPath) {
  console.error("usage: node check.mjs <openapi.json> <answers.jsonl>");
  process.exit(2);
}
const doc = JSON.parse(readFileSync(docPath, "utf8"));
const failures = [];

const validator = new Validator();
const res = await validator.validate(structuredClone(doc));
if (!res.valid) {
  failures.push(`the document is not valid OpenAPI: ${JSON.stringify(res.errors, null, 1)}`);
}
if (validator.version !== "3.1") {
  failures.push(`the document is OpenAPI ${validator.version}, not 3.1`);
}

const DOC_ID = "urn:retain:openapi";
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);
ajv.addSchema({ ...doc, $id: DOC_ID });

const pointer = (parts) => parts.map((p) => String(p).replace(/~/g, "~0").replace(/\//g, "~1")).join("/");

// A response object, following a $ref into components.
function deref(obj) {
  while (obj && obj.$ref) {
    const path = obj.$ref.replace(/^#\//, "").split("/").map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"));
    obj = path.reduce((o, k) => (o ? o[k] : undefined), doc);
  }
  return obj;
}

const lines = readFileSync(answersPath, "utf8").split("\n").filter((l) => l.trim());
if (lines.length === 0) failures.push("no answers to check");
const compiled = new Map();
let checked = 0;
for (const line of lines) {
  const a = JSON.parse(line);
  const where = `${a.method} ${a.url} -> ${a.status}`;
  const op = doc.paths?.[a.path]?.[a.method.toLowerCase()];
  if (!op) {
    failures.push(`${where}: the document has no operation ${a.method} ${a.path}`);
    continue;
  }
  const statusKey = op.responses[String(a.status)] ? String(a.status) : "default";
  const resp = deref(op.responses[statusKey]);
  if (!resp) {
    failures.push(`${where}: status ${a.status} is not described`);
    continue;
  }
  const media = (a.type || "").split(";")[0].trim().toLowerCase();
  if (!resp.content) {
    if (a.body !== "") failures.push(`${where}: a body where the document describes none`);
    checked++;
    continue;
  }
  if (!resp.content[media]) {
    failures.push(`${where}: Content-Type "${a.type}" is not one of ${Object.keys(resp.content).join(", ")}`);
    continue;
  }
  // The schema by its place in the document, so its $refs resolve there.
  const responseRef = op.responses[statusKey].$ref
    ? op.responses[statusKey].$ref.replace(/^#/, "")
    : "/" + pointer(["paths", a.path, a.method.toLowerCase(), "responses", statusKey]);
  const ref = `${DOC_ID}#${responseRef}/${pointer(["content", media, "schema"])}`;
  let validate = compiled.get(ref);
  if (!validate) {
    validate = ajv.compile({ $ref: ref });
    compiled.set(ref, validate);
  }
  // A JSON media type (application/json, application/problem+json) is
  // parsed and checked against its schema; any other (text/plain) is
  // checked as the string it is.
  let body = a.body;
  if (media === "application/json" || media.endsWith("+json")) {
    try {
      body = JSON.parse(a.body);
    } catch (e) {
      failures.push(`${where}: the body is not JSON (${e.message})`);
      continue;
    }
  }
  if (!validate(body)) {
    failures.push(`${where}: ${ajv.errorsText(validate.errors)}\n  body: ${a.body.slice(0, 500)}`);
    continue;
  }
  checked++;
}

if (failures.length) {
  console.error(`openapi check: ${failures.length} problem(s):`);
  for (const f of failures) console.error(" - " + f);
  process.exit(1);
}
console.error(`openapi check: the document is valid OpenAPI 3.1; ${checked} answers match it`);
