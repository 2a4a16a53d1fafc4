// The drawing pad: pointer strokes on a canvas, sent as a dataframe_records PNG to /invocations
// like any client, with "return_prepared" to show the 28 x 28 image the model saw.
"use strict";

const pad = document.getElementById("pad");
const pen = pad.getContext("2d");
const bars = document.getElementById("bars");
const TOKEN_KEY = "mnist-serving-token";
let drawing = false;
let pending = null;
let strokes = 0; // strokes since the last clear (the page says which drawing a reading is of)
let edits = 0; // strokes and clears so far: a reading is shown only if none came after it

function clearPad() {
  clearTimeout(pending); // a reading of the cleared drawing must not be sent any more
  edits += 1;
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, pad.width, pad.height);
  pen.lineWidth = pad.width / 14; // about MNIST's stroke width relative to the digit
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.strokeStyle = "#000";
  strokes = 0;
  delete document.body.dataset.readStrokes;
  document.getElementById("digit").textContent = "–";
  document.getElementById("status").textContent = "";
  drawBars(null);
  document.getElementById("prepared").getContext("2d").clearRect(0, 0, 140, 140);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width,
          (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  clearTimeout(pending); // the digit is not finished: read it after this stroke instead
  strokes += 1;
  edits += 1;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  pen.beginPath();
  pen.moveTo(x, y);
  pen.lineTo(x, y);
  pen.stroke();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const [x, y] = point(event);
  pen.lineTo(x, y);
  pen.stroke();
});
for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, () => {
    if (!drawing) return;
    drawing = false;
    clearTimeout(pending);
    pending = setTimeout(read, 150); // a digit of several strokes is read once, after the last
  });
}
document.getElementById("clear").addEventListener("click", clearPad);

async function read(askedForToken = false) {
  const drawn = strokes;
  const edit = edits;
  const image = pad.toDataURL("image/png").split(",")[1];
  const headers = { "Content-Type": "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const body = { dataframe_records: [{ image }], params: { return_prepared: true } };
  const status = document.getElementById("status");
  status.textContent = "reading...";
  const response = await fetch("/invocations", { method: "POST", headers, body: JSON.stringify(body) });
  if (response.status === 401 && !askedForToken) {
    const given = window.prompt("This server needs its token (MNIST_SERVING_TOKEN):");
    if (given) {
      sessionStorage.setItem(TOKEN_KEY, given.trim());
      return read(true);
    }
  }
  const answer = await response.json();
  if (edit !== edits) return; // the digit changed meanwhile: a newer reading is on its way
  if (!response.ok) {
    status.textContent = `${response.status}: ${answer.message || JSON.stringify(answer)}`;
    document.getElementById("digit").textContent = "?";
    return;
  }
  const prediction = answer.predictions[0];
  if (prediction.digit === null) {
    document.getElementById("digit").textContent = "?";
    status.textContent = prediction.error;
    return;
  }
  document.getElementById("digit").textContent = String(prediction.digit);
  status.textContent = `${(100 * prediction.probabilities[prediction.digit]).toFixed(1)}% sure`;
  drawBars(prediction.probabilities);
  drawPrepared(prediction.prepared);
  document.body.dataset.readStrokes = String(drawn); // which drawing this reading is of
}

function drawBars(probabilities) {
  bars.replaceChildren();
  for (let digit = 0; digit < 10; digit++) {
    const p = probabilities ? probabilities[digit] : 0;
    const item = document.createElement("li");
    const top = probabilities && p === Math.max(...probabilities);
    item.className = top ? "top" : "";
    item.innerHTML = `<span class="label">${digit}</span>` +
      `<span class="bar" style="width:${(12 * p).toFixed(2)}rem"></span>` +
      `<span class="value">${(100 * p).toFixed(1)}%</span>`;
    bars.appendChild(item);
  }
}

function drawPrepared(pixels) {
  const canvas = document.getElementById("prepared");
  const small = new ImageData(28, 28);
  pixels.flat().forEach((value, i) => {
    small.data.set([value, value, value, 255], 4 * i);
  });
  const scratch = document.createElement("canvas");
  scratch.width = scratch.height = 28;
  scratch.getContext("2d").putImageData(small, 0, 0);
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.drawImage(scratch, 0, 0, canvas.width, canvas.height);
}

clearPad();
