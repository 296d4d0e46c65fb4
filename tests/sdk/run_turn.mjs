// Drives our codex binary through the official TypeScript SDK with
// codexPathOverride: one streamed turn, then (with --resume-prompt) a second
// turn on the same thread through `resumeThread`. Prints every streamed event
// as a JSON line, then a summary.
//   node run_turn.mjs --codex BIN --cwd DIR --prompt TEXT [--resume-prompt TEXT]
import { Codex } from "@openai/codex-sdk";

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const options = {
  workingDirectory: arg("--cwd"),
  skipGitRepoCheck: true,
  sandboxMode: "workspace-write",
  approvalPolicy: "never",
};
const codex = new Codex({ codexPathOverride: arg("--codex"), env: { ...process.env } });
const timer = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true }));
  process.exit(3);
}, 90000);

async function turn(thread, prompt, label) {
  const items = [];
  let ok = true;
  try {
    const { events } = await thread.runStreamed(prompt);
    for await (const ev of events) {
      console.log(JSON.stringify({ turn: label, event: ev }));
      if (ev.type === "item.completed") items.push(ev.item);
      if (ev.type === "turn.failed") ok = false;
    }
  } catch (err) {
    ok = false;
    console.log(JSON.stringify({ turn: label, error: String(err?.message ?? err) }));
  }
  return { ok, items, thread_id: thread.id };
}

const thread = codex.startThread(options);
const first = await turn(thread, arg("--prompt", "hello"), 1);
let second = null;
const resumePrompt = arg("--resume-prompt");
if (first.ok && resumePrompt) {
  second = await turn(codex.resumeThread(thread.id, options), resumePrompt, 2);
}
clearTimeout(timer);
console.log(JSON.stringify({ summary: { first, second } }));
process.exit(first.ok && (second === null || second.ok) ? 0 : 1);
