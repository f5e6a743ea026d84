// Browser test of the pipelined console in Debian's chromium, driven by
// playwright-core. TestConsoleBrowser (internal/server) starts the server,
// seeds a pipeline through the API with a job worker running, creates the
// users, and runs this with node --test. Nothing is created through the
// console's own forms but what a person would do in it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import { join } from "node:path";

const base = process.env.CONSOLE_URL;
const pipeline = process.env.CONSOLE_PIPELINE;
const shots = process.env.SCREENSHOT_DIR;
const operator = { name: process.env.OPERATOR_NAME, password: process.env.OPERATOR_PASSWORD };
const viewer = { name: process.env.VIEWER_NAME, password: process.env.VIEWER_PASSWORD };

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

async function signIn(page, who) {
  await page.goto(base + "/console/pipelines");
  await page.waitForURL(/\/console\/signin/);
  await page.getByLabel("User name").fill(who.name);
  await page.getByLabel("Password").fill(who.password);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForURL(/\/console\/pipelines/);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, name + ".png"), fullPage: true });
}

test("an operator watches a release, approves it in the Review dialog, stops one and disables a transition", async () => {
  const browser = await launch();
  try {
    const page = await (await browser.newContext({ viewport: { width: 1366, height: 900 } })).newPage();
    await signIn(page, operator);
    await assert.doesNotReject(page.getByRole("link", { name: pipeline }).waitFor());
    await shot(page, "pipelines");

    await page.getByRole("link", { name: pipeline }).click();
    await page.getByRole("heading", { level: 1, name: pipeline }).waitFor();
    await page.getByText("Live updates: on").waitFor();
    // The execution reaches the approval while the page is open: the
    // Review button appears without a reload (server-sent events).
    const review = page.getByRole("link", { name: "Review" });
    await review.waitFor({ timeout: 30000 });
    await shot(page, "pipeline");

    // Approve in the dialog, with a comment; keyboard-reachable controls.
    await review.click();
    const dialog = page.getByRole("dialog");
    await dialog.waitFor();
    await assert.doesNotReject(dialog.getByText("Check the release notes").waitFor());
    await dialog.getByLabel("Comments").fill("Approved in the browser test");
    await shot(page, "review");
    await dialog.getByRole("button", { name: "Approve" }).click();
    await page.getByRole("status").filter({ hasText: "Approved" }).first().waitFor();
    // The execution goes on to Ship and succeeds, shown live.
    await page.locator("li.stage", { hasText: "Ship" }).getByText("Succeeded").first().waitFor({ timeout: 30000 });

    // Release change starts another execution; stop it (abandon) when it
    // waits at the approval.
    await page.locator("summary", { hasText: "Release change" }).click();
    await page.getByRole("button", { name: "Release change" }).click();
    await page.getByRole("status").filter({ hasText: "Started execution" }).waitFor();
    await page.getByRole("link", { name: "Review" }).waitFor({ timeout: 30000 });
    const row = page.locator("section.recent tbody tr").first();
    await row.getByPlaceholder("Reason").fill("stopped by the browser test");
    await row.getByLabel("Abandon").check();
    await row.getByRole("button", { name: "Stop" }).click();
    await page.getByRole("status").filter({ hasText: "Abandoning execution" }).waitFor();
    await page.locator("section.recent tbody tr").first().locator(".badge", { hasText: "Stopped" }).waitFor({ timeout: 30000 });

    // Disable the transition into Ship, with a reason.
    const into = page.locator("li.transition", { hasText: "into Ship" });
    await into.getByText("Disable transition").click();
    await into.getByLabel("Reason").fill("change freeze");
    await into.getByRole("button", { name: "Disable", exact: true }).click();
    await page.getByText("Transition disabled").waitFor();
    await page.getByText("change freeze").waitFor();
    await shot(page, "pipeline-after");

    // Execution history and an execution's timeline.
    await page.getByRole("link", { name: "Execution history" }).click();
    await page.getByRole("heading", { name: /Execution history/ }).waitFor();
    await page.locator("tbody tr a").last().click();
    await page.getByRole("heading", { name: "Timeline" }).waitFor();
    await assert.doesNotReject(page.getByText("Approved in the browser test").first().waitFor());
    await shot(page, "execution");

    // The approvals inbox.
    await page.getByRole("link", { name: "Approvals" }).click();
    await page.getByRole("heading", { name: "Approvals waiting" }).waitFor();
    await shot(page, "approvals");
  } finally {
    await browser.close();
  }
});

test("a viewer sees no Review button, and forged posts are refused", async () => {
  const browser = await launch();
  try {
    const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
    await signIn(page, viewer);
    await page.goto(base + "/console/pipelines/" + encodeURIComponent(pipeline));
    await page.getByRole("heading", { level: 1, name: pipeline }).waitFor();
    assert.equal(await page.getByRole("link", { name: "Review" }).count(), 0, "a viewer is offered Review");
    assert.equal(await page.getByRole("button", { name: "Release change" }).count(), 0, "a viewer is offered Release change");
    await shot(page, "pipeline-viewer-phone");
    // A POST from the viewer's own session, with its own CSRF token, is
    // refused by role; without a token it is refused too.
    const statuses = await page.evaluate(async (p) => {
      const csrf = document.querySelector('input[name="_csrf"]').value;
      const post = (body) => fetch("/console/pipelines/" + encodeURIComponent(p) + "/release", {
        method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" }, body, redirect: "manual",
      }).then((r) => r.status);
      return [await post("_csrf=" + encodeURIComponent(csrf)), await post("")];
    }, pipeline);
    assert.deepEqual(statuses, [403, 403]);
  } finally {
    await browser.close();
  }
});
