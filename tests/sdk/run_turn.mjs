// One turn through the official TypeScript SDK with codexPathOverride set to
// our binary. Prints every streamed event as a JSON line, then a summary.
//   node run_turn.mjs --codex BIN --cwd DIR --prompt TEXT
import { Codex } from "@openai/codex-sdk";

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : dflt;
}

const codex = new Codex({ codexPathOverride: arg("--codex"), env: { ...process.env } });
const thread = codex.startThread({
  workingDirectory: arg("--cwd"),
  skipGitRepoCheck: true,
  sandboxMode: "workspace-write",
  approvalPolicy: "never",
});
const timer = setTimeout(() => {
  console.log(JSON.stringify({ timeout: true }));
  process.exit(3);
}, 90000);
const items = [];
let ok = true;
try {
  const { events } = await thread.runStreamed(arg("--prompt", "hello"));
  for await (const ev of events) {
    console.log(JSON.stringify({ event: ev }));
    if (ev.type === "item.completed") items.push(ev.item);
    if (ev.type === "turn.failed") ok = false;
  }
} catch (err) {
  ok = false;
  console.log(JSON.stringify({ error: String(err?.message ?? err) }));
}
clearTimeout(timer);
console.log(JSON.stringify({ summary: { ok, thread_id: thread.id, items } }));
process.exit(ok ? 0 : 1);
