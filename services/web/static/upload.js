// つなぐ: progress for uploads (ui.md: "with progress for a large file"). Pages work without this script: the
// form posts as usual. With it, the file goes by XMLHttpRequest so that a <progress> shows how much has been
// sent, then "処理中" while the hub imports it, and the result page the hub answers replaces this one.
(function () {
  "use strict";
  var form = document.querySelector("form[data-upload-progress]");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var box = document.getElementById("upload-progress");
  var bar = box.querySelector("progress");
  var text = box.querySelector("[data-progress-text]");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.responseType = "document";
    request.upload.addEventListener("progress", function (e) {
      if (!e.lengthComputable) { return; }
      bar.max = e.total;
      bar.value = e.loaded;
      text.textContent = "送信中 " + Math.round(e.loaded * 100 / e.total) + "%";
    });
    request.upload.addEventListener("load", function () {
      bar.removeAttribute("value");
      text.textContent = "送信しました。取り込み中です（しばらくお待ちください）";
    });
    request.addEventListener("load", function () {
      if (request.response && request.response.documentElement) {
        document.replaceChild(document.importNode(request.response.documentElement, true), document.documentElement);
        window.scrollTo(0, 0);
      } else {
        form.submit();
      }
    });
    request.addEventListener("error", function () {
      text.textContent = "送信できませんでした。通信を確認して、もう一度送信してください。";
    });
    box.hidden = false;
    form.querySelector("button[type=submit]").disabled = true;
    request.send(new FormData(form));
  });
}());
