// Square crop before upload, no build step. For every [data-crop] block with a
// file input: show the picked image on a canvas, let the person drag it to
// choose the square, and replace the file with an 800x800 JPEG of that square.
// The server still validates and re-encodes whatever arrives.
(function () {
  "use strict";
  var OUTPUT = 800;

  function setup(block) {
    var input = block.querySelector('input[type="file"]');
    var canvas = block.querySelector("canvas.crop-preview");
    var hint = block.querySelector(".crop-hint");
    if (!input || !canvas || !window.DataTransfer) return;
    var ctx = canvas.getContext("2d");
    var state = null; // {img, side, x, y}
    var replacing = false;

    function draw() {
      ctx.clearRect(0, 0, canvas.width, canvas.height);
      ctx.drawImage(state.img, state.x, state.y, state.side, state.side, 0, 0, canvas.width, canvas.height);
    }

    function exportSquare() {
      var out = document.createElement("canvas");
      out.width = out.height = Math.min(OUTPUT, state.side);
      out.getContext("2d").drawImage(state.img, state.x, state.y, state.side, state.side, 0, 0, out.width, out.height);
      out.toBlob(function (blob) {
        if (!blob) return;
        var transfer = new DataTransfer();
        transfer.items.add(new File([blob], "picture.jpg", { type: "image/jpeg" }));
        replacing = true;
        input.files = transfer.files;
        replacing = false;
      }, "image/jpeg", 0.92);
    }

    input.addEventListener("change", function () {
      if (replacing || !input.files.length) return;
      var file = input.files[0];
      if (!/^image\/(jpeg|png|webp|gif)$/.test(file.type)) return; // the server explains the refusal
      var url = URL.createObjectURL(file);
      var img = new Image();
      img.onload = function () {
        var side = Math.min(img.naturalWidth, img.naturalHeight);
        state = { img: img, side: side, x: (img.naturalWidth - side) / 2, y: (img.naturalHeight - side) / 2 };
        canvas.hidden = false;
        if (hint) hint.hidden = false;
        draw();
        exportSquare();
      };
      img.src = url;
    });

    var dragging = null;
    canvas.addEventListener("pointerdown", function (e) {
      if (!state) return;
      dragging = { x: e.clientX, y: e.clientY };
      canvas.setPointerCapture(e.pointerId);
    });
    canvas.addEventListener("pointermove", function (e) {
      if (!dragging || !state) return;
      var scale = state.side / canvas.clientWidth;
      state.x = Math.max(0, Math.min(state.img.naturalWidth - state.side, state.x - (e.clientX - dragging.x) * scale));
      state.y = Math.max(0, Math.min(state.img.naturalHeight - state.side, state.y - (e.clientY - dragging.y) * scale));
      dragging = { x: e.clientX, y: e.clientY };
      draw();
    });
    function stop() {
      if (dragging) { dragging = null; exportSquare(); }
    }
    canvas.addEventListener("pointerup", stop);
    canvas.addEventListener("pointercancel", stop);
  }

  document.querySelectorAll("[data-crop]").forEach(setup);
})();
