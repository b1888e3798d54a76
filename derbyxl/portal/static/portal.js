// Progressive enhancement: drag a workbook onto the upload box, and see the upload's progress.
// The form works the same without this script.
(function () {
  var form = document.getElementById("upload-form");
  if (!form || !window.FormData || !window.XMLHttpRequest) return;
  var input = form.querySelector("input[type=file]");
  var bar = document.getElementById("progress");
  ["dragenter", "dragover"].forEach(function (e) {
    form.addEventListener(e, function (ev) { ev.preventDefault(); form.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (e) {
    form.addEventListener(e, function (ev) { ev.preventDefault(); form.classList.remove("dragging"); });
  });
  form.addEventListener("drop", function (ev) {
    if (ev.dataTransfer && ev.dataTransfer.files.length) { input.files = ev.dataTransfer.files; }
  });
  form.addEventListener("submit", function (ev) {
    if (!input.files.length) return;
    ev.preventDefault();
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    bar.hidden = false;
    xhr.upload.onprogress = function (p) { if (p.lengthComputable) bar.value = 100 * p.loaded / p.total; };
    xhr.onload = function () { window.location.href = xhr.responseURL || window.location.href; };
    xhr.onerror = function () { form.submit(); };
    xhr.send(new FormData(form));
  });
})();
