// End to end: `loong serve` with a tiny random-weight bundle, driven in
// Debian's Chromium (headless) by playwright-core. Run by CTest
// (tests/CMakeLists.txt, test "browser.studio"); by hand:
//   LOONG=build/bin/loong node tests/browser/studio.test.mjs
// Environment: LOONG (the binary), CHROMIUM (default /usr/bin/chromium),
// SHOTS (a folder for the screenshots docs/serve.md shows; default: none),
// MODEL (a bundle to use instead of a random one: SHOTS=docs/figures
// MODEL=models/default makes the figures docs/serve.md shows).
// Exit status 77 (CTest: skipped) when Chromium or playwright-core is missing.
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const SKIP = 77;
const loong = process.env.LOONG || "build/bin/loong";
const chromiumPath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!fs.existsSync(chromiumPath)) { console.log(`skipped: no Chromium at ${chromiumPath} (./run test installs it)`); process.exit(SKIP); }
let chromium;
try {
  ({ chromium } = await import("playwright-core"));
} catch (e) {
  console.log("skipped: playwright-core is not installed (cd tests/browser && npm ci)");
  process.exit(SKIP);
}

const work = fs.mkdtempSync(path.join(os.tmpdir(), "loong-browser-"));
const checks = [];
function check(ok, what) {
  checks.push({ ok: !!ok, what });
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(what, f, timeoutMs = 60000) {
  const t0 = Date.now();
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

// A bundle with random weights (or a copy of $MODEL, for screenshots that
// show something) whose clips are 17 frames: 10 s of video is 5 clips, so
// the video grows while the job runs.
if (process.env.MODEL) fs.cpSync(process.env.MODEL, path.join(work, "model"), { recursive: true });
else execFileSync(loong, ["model", "init", "--out", path.join(work, "model")], { stdio: "inherit" });
const infoPath = path.join(work, "model", "loong.json");
const bundleInfo = JSON.parse(fs.readFileSync(infoPath, "utf8"));
bundleInfo.clip_frames = 17;
fs.writeFileSync(infoPath, JSON.stringify(bundleInfo, null, 2));

// A pause after each clip (a test hook) so that a tiny model's job lasts long
// enough to watch it play and to cancel one.
const server = spawn(loong, ["serve", "--model", path.join(work, "model"), "--port", "0", "--out", path.join(work, "studio")], {
  env: { ...process.env, LOONG_TEST_CLIP_DELAY_MS: "1200", LOONG_THREADS: "1" },
  stdio: ["ignore", "pipe", "inherit"],
});
const url = await new Promise((resolve, reject) => {
  let out = "";
  server.stdout.on("data", (d) => {
    out += d;
    const m = out.match(/(http:\/\/\S+)/);
    if (m) resolve(m[1]);
  });
  server.on("exit", (code) => reject(new Error(`loong serve exited with ${code}`)));
});
const api = async (p, init) => (await fetch(new URL(p, url), init)).json();

let browser;
let failed = false;
try {
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
  });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  const modelName = bundleInfo.name;
  await page.waitForFunction((n) => document.getElementById("model").textContent.includes(n), modelName);
  check(true, "the page loads and shows the model");

  // A bad field: the server's message beside the field.
  await page.fill("#top_k", "0");
  await page.fill("#prompt", "a red sneaker moving to the right on a black background");
  await page.click("#generate");
  await page.waitForFunction(() => document.getElementById("err-top_k").textContent !== "");
  const topkErr = await page.textContent("#err-top_k");
  check(topkErr.includes("--top-k") && topkErr.includes("must be >= 1"), `a bad top-k is shown beside its field: "${topkErr}"`);
  await page.fill("#top_k", "50");

  // Generate 10 s: the <video> plays while the job still runs.
  await page.fill("#seconds", "10");
  await page.click("#generate");
  const id = await until("the job", () => page.evaluate(() => current));
  let playingWhileRunning = false, shot = false;
  for (;;) {
    const job = await api(`/api/jobs/${id}`);
    const t = await page.evaluate(() => document.getElementById("player").currentTime);
    if (job.state === "running" && t > 0.5) {
      playingWhileRunning = true;
      if (!shot && process.env.SHOTS && job.clips_written >= 2) {
        fs.mkdirSync(process.env.SHOTS, { recursive: true });
        await page.screenshot({ path: path.join(process.env.SHOTS, "serve-generating.png") });
        shot = true;
      }
    }
    if (job.state !== "running" && job.state !== "queued") break;
    await sleep(100);
  }
  const job = await api(`/api/jobs/${id}`);
  check(job.state === "done", `the job finishes (${job.state} ${job.error || ""})`);
  check(playingWhileRunning, "the video plays (currentTime advances) while the job is still running");
  const stats = await page.evaluate((i) => window.loongStats[i], id);
  const latency = stats.firstFrameAt - job.first_clip_ms;
  console.log(`first frame on screen ${latency.toFixed(0)} ms after the first clip was ready`);
  check(stats.firstFrameAt > 0 && latency <= 2000, `first frame within 2 s of the first clip (${latency.toFixed(0)} ms)`);
  fs.writeFileSync(path.join(work, "latency.json"), JSON.stringify({ first_frame_ms: latency }));
  console.log(`LATENCY_JSON ${JSON.stringify({ first_frame_after_first_clip_ms: Math.round(latency) })}`);

  // Another job, cancelled from the page while it runs: nothing in the gallery.
  await page.fill("#prompt", "a blue shirt moving down on a black background");
  await page.click("#generate");
  const id2 = await until("the second job", async () => { const c = await page.evaluate(() => current); return c !== id && c; });
  await until("the second job to run", async () => (await api(`/api/jobs/${id2}`)).state === "running");
  await page.click("#cancel");
  await until("the cancel", async () => (await api(`/api/jobs/${id2}`)).state === "cancelled");
  check(true, "a running job is cancelled from the page");
  const dirs = fs.readdirSync(path.join(work, "studio"));
  check(dirs.length === 1 && dirs[0] === id, `only the finished result is in the results folder (${dirs.join(", ")})`);

  // The gallery: the finished video plays from its file; continue it.
  await page.reload();
  await page.waitForSelector(".card");
  const cards = await page.$$eval(".card", (cs) => cs.map((c) => c.dataset.name));
  check(cards.length === 1 && cards[0] === id, `the gallery shows the result (${cards.join(", ")})`);
  const duration = await until("the gallery video's metadata", () =>
    page.$eval(".card video", (v) => (v.readyState >= 1 ? v.duration : 0)));
  check(Math.abs(duration - 10) < 0.5, `the gallery's video is 10 s long (${duration.toFixed(2)} s)`);
  await page.click(".card .continue");
  check((await page.textContent("#continue")).includes(id), "'Continue this video' picks the result");
  if (process.env.SHOTS) await page.screenshot({ path: path.join(process.env.SHOTS, "serve-gallery.png"), fullPage: true });
  check(errors.length === 0, `no script errors on the page (${errors.join("; ")})`);
} catch (e) {
  console.log(`FAIL ${e.stack || e}`);
  failed = true;
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
  await new Promise((r) => server.on("exit", r));
  fs.rmSync(work, { recursive: true, force: true });
}
const bad = checks.filter((c) => !c.ok).length;
console.log(`${checks.length - bad} of ${checks.length} checks passed`);
process.exit(failed || bad ? 1 : 0);
