// digitlab's page, corrections: confirm or correct the answer on show, saved by POST /api/feedback.
//
// After each answer the user confirms it or picks the right digit; the picture that was answered goes to
// the server with one {label, predicted, box} per digit, which it saves as training samples (`digitlab
// serve --feedback DIR`). In a number the picker corrects the chosen digit (click a digit to choose it);
// a refused mark must be given its digit before the number can be saved. app.js makes one with
// `digitlabFeedback(page)`, page giving `selected()` (the chosen digit), `selectDigit(k)` and `showModel()`.
"use strict";

window.digitlabFeedback = (page) => {
  const teachEl = document.getElementById("teach");
  const confirmBtn = document.getElementById("confirm");
  const pickerEl = document.getElementById("picker");
  const teachOrEl = document.getElementById("teach-or");
  const teachStatusEl = document.getElementById("teach-status");
  const countEl = document.getElementById("feedback-count");
  const commandEl = document.getElementById("finetune-command");
  const useBtn = document.getElementById("use-finetuned");
  const picks = [];
  let answer = null;       // {blob, name, digits: [{predicted, box}], labels, saved}: the answer on show
  let feedbackOn = false;  // the server saves feedback (GET /api/feedback says so)
  let finetuned = null;    // the folder the fine-tune command writes, which "Use" switches to

  for (let d = 0; d < 10; d++) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = String(d);
    button.dataset.testid = `correct-${d}`;
    button.setAttribute("aria-label", `No, it is ${d}`);
    button.disabled = true;
    button.addEventListener("click", () => correct(d));
    pickerEl.appendChild(button);
    picks.push(button);
  }
  confirmBtn.addEventListener("click", () => { if (answer) sendFeedback(answer.digits.map((g) => g.predicted)); });

  function teachStatus(message, isError) {
    teachStatusEl.textContent = message;
    teachStatusEl.classList.toggle("error", Boolean(isError));
  }

  function setTeachEnabled(on) {
    confirmBtn.disabled = !on || !answer || answer.digits.some((g) => g.predicted === null);
    picks.forEach((b) => { b.disabled = !on; });
  }

  // The picker speaks of the chosen digit of a number ("No, digit 2 is 5").
  function pickerFor(k) {
    const many = Boolean(answer) && answer.digits.length > 1;
    teachOrEl.textContent = many ? `no, digit ${k + 1} is` : "no, it is";
    picks.forEach((b, d) => b.setAttribute("aria-label", many ? `No, digit ${k + 1} is ${d}` : `No, it is ${d}`));
    picks.forEach((b, d) => b.classList.toggle("chosen", Boolean(answer) && answer.labels[k] === d &&
      answer.labels[k] !== answer.digits[k].predicted));
  }

  function answered(blob, name, result) {
    answer = result.digits.length === 0 ? null : {
      blob, name, saved: false,
      digits: result.digits.map((g) => ({ predicted: g.label, box: g.box })),
      labels: result.digits.map((g) => g.label),
    };
    picks.forEach((b) => b.classList.remove("chosen"));
    confirmBtn.textContent = answer && result.number ? `Yes, ${result.number}` : "Yes";
    setTeachEnabled(feedbackOn && answer !== null);
    teachStatus(answer && result.number === "" && feedbackOn ? "Which digit is the marked one? Pick it below." : "");
    if (answer) pickerFor(page.selected());
  }

  function forgetAnswer() {
    answer = null;
    setTeachEnabled(false);
    picks.forEach((b) => b.classList.remove("chosen"));
    confirmBtn.textContent = "Yes";
    teachOrEl.textContent = "no, it is";
    teachStatus("");
  }

  // The chosen digit is `d`: saved at once when every digit then has a label, else on to the next unknown one.
  function correct(d) {
    if (!answer || answer.saved) return;
    answer.labels[page.selected()] = d;
    const unknown = answer.labels.indexOf(null);
    if (unknown < 0) {
      sendFeedback(answer.labels.slice());
      return;
    }
    page.selectDigit(unknown);
    teachStatus(`Digit ${unknown + 1} is not read: which digit is it?`);
  }

  async function sendFeedback(labels) {
    if (!answer || answer.saved || labels.some((label) => label === null)) return;
    const sending = answer;
    setTeachEnabled(false);
    teachStatus("Saving…");
    const form = new FormData();
    form.append("file", sending.blob, sending.name);
    form.append("digits", JSON.stringify(sending.digits.map((g, k) => (
      { label: labels[k], predicted: g.predicted, box: g.box }))));
    try {
      const response = await fetch("/api/feedback", { method: "POST", body: form });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
      sending.saved = true;
      if (answer !== sending) return;  // the drawing changed meanwhile; the sample is saved all the same
      pickerFor(page.selected());
      const same = labels.every((label, k) => label === sending.digits[k].predicted);
      teachStatus(same ? `Saved: confirmed ${labels.join("")}` : `Saved as ${labels.join("")}`);
      teachEl.dataset.saved = body.ids.join(" ");
      showCounts(body.counts);
    } catch (err) {
      if (answer === sending) setTeachEnabled(true);
      teachStatus(err.message, true);
    }
  }

  function showCounts(counts) {
    const total = counts.total;
    countEl.textContent = total === 0 ? "No samples saved yet" : `${total} sample${total === 1 ? "" : "s"} saved`;
    countEl.dataset.total = String(total);
  }

  async function loadFeedback() {
    try {
      const info = await (await fetch("/api/feedback")).json();
      feedbackOn = Boolean(info.enabled);
      teachEl.hidden = !feedbackOn;
      if (!feedbackOn) return;
      commandEl.textContent = info.command;
      finetuned = info.output;
      useBtn.textContent = `Use ${finetuned}`;
      showCounts(info.counts);
      if (answer && !answer.saved) setTeachEnabled(true);
    } catch (_) {
      teachEl.hidden = true;
    }
  }

  useBtn.addEventListener("click", async () => {
    useBtn.disabled = true;
    teachStatus(`Loading ${finetuned}…`);
    try {
      const response = await fetch("/api/model", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ model: finetuned }),
      });
      const body = await response.json().catch(() => ({}));
      if (response.status === 404) throw new Error(`No model in ${finetuned} yet: run the command above first`);
      if (!response.ok) throw new Error(body.error || `server answered ${response.status}`);
      teachStatus(`Now answering with ${finetuned}`);
      await page.showModel();
    } catch (err) {
      teachStatus(err.message, true);
    } finally {
      useBtn.disabled = false;
    }
  });

  return { answered, forgetAnswer, pickerFor, load: loadFeedback };
};
