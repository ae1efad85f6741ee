// What runs spent and the caps they are held to, in words (the session's `spent` and
// `budget`, and the `totals` of the `usage` and `message_complete` events).
import { formatNumber } from "./dom.js";

const CAPS = [
  ["max_steps", (v) => `${formatNumber(v)} step${v === 1 ? "" : "s"}`],
  ["max_tokens", (v) => `${formatNumber(v)} tokens`],
  ["max_cost_usd", (v) => formatUsd(v)],
  ["max_seconds", (v) => `${formatNumber(v)} s`],
];

/** "$0.0123": cents and below need more than two places to be worth showing. */
export function formatUsd(value) {
  const n = Number(value || 0);
  return `$${n >= 1 ? n.toFixed(2) : n.toFixed(4)}`;
}

/** "3 steps · 5,929 tokens · $0.0103 · 6 s", or "" before anything was spent. */
export function formatSpent(totals) {
  if (!totals || !totals.steps) return "";
  const parts = [
    `${formatNumber(totals.steps)} step${totals.steps === 1 ? "" : "s"}`,
    `${formatNumber(totals.tokens)} tokens`,
  ];
  if (totals.cost_usd !== null && totals.cost_usd !== undefined) {
    parts.push(formatUsd(totals.cost_usd));
  }
  if (totals.seconds) parts.push(`${Math.round(totals.seconds)} s`);
  return parts.join(" · ");
}

/** "at most 20 steps · $0.50", or "" without caps. */
export function formatBudget(budget) {
  const caps = CAPS.filter(([key]) => budget && budget[key] != null)
    .map(([key, format]) => format(budget[key]));
  return caps.length ? `at most ${caps.join(" · ")}` : "";
}
