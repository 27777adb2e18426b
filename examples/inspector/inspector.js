// The token inspector: sends the pasted token to this gateway's explain endpoint (same origin)
// and shows the report. No other resource is loaded; nothing is stored.
"use strict";

const MARKS = { pass: "✓", fail: "✗", skipped: "–", info: "·" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function show(report) {
  const answer = report.answer;
  const verdict = document.getElementById("verdict");
  if (answer.kind === null) {
    verdict.textContent = `${answer.status} accepted`;
    verdict.className = "verdict accepted";
  } else {
    const error = answer.error || answer.kind;
    const kind = answer.kind !== error ? ` (${answer.kind})` : "";
    verdict.textContent = `${answer.status} ${error}${kind}: ${answer.description}`;
    verdict.className = "verdict refused";
  }
  verdict.dataset.status = String(answer.status);
  verdict.dataset.kind = answer.kind || "";
  document.getElementById("challenge").textContent = answer.www_authenticate
    ? `WWW-Authenticate: ${answer.www_authenticate}`
    : "";

  const body = document.querySelector("#checks tbody");
  body.replaceChildren();
  for (const check of report.checks) {
    const row = el("tr", check.outcome);
    row.dataset.check = check.name;
    row.dataset.outcome = check.outcome;
    row.append(el("td", "mark", MARKS[check.outcome] || "?"));
    row.append(el("td", "name", check.name.replace("_", " ")));
    row.append(el("td", "mono", check.expected));
    const found = el("td", "mono", check.found);
    if (check.detail) found.append(el("span", "detail", check.detail));
    row.append(found);
    body.append(row);
  }

  const notes = document.getElementById("notes");
  notes.replaceChildren(...report.notes.map((n) => el("li", "", n)));
  document.getElementById("header").textContent =
    report.header === null ? "(not JSON)" : JSON.stringify(report.header, null, 2);
  document.getElementById("claims").textContent =
    report.claims === null ? "(not read)" : JSON.stringify(report.claims, null, 2);
  const title = document.getElementById("claims-title");
  title.textContent = report.claims_verified || report.claims === null
    ? "Claims"
    : "Claims — NOT verified";
  title.className = report.claims_verified ? "" : "unverified";
  document.getElementById("result").hidden = false;
}

async function explain(event) {
  event.preventDefault();
  const error = document.getElementById("error");
  error.hidden = true;
  const token = document.getElementById("token").value.trim();
  try {
    const response = await fetch("explain", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      cache: "no-store",
      credentials: "omit",
    });
    if (!response.ok) throw new Error(`the explain endpoint answered ${response.status}`);
    show(await response.json());
  } catch (e) {
    error.textContent = String(e.message || e);
    error.hidden = false;
  }
}

document.getElementById("form").addEventListener("submit", explain);
document.getElementById("clear").addEventListener("click", () => {
  document.getElementById("token").value = "";
  document.getElementById("result").hidden = true;
});
