// GuardMDM dashboard: "Download the full report (CSV)" on a bulk form's report. The button
// posts its form (the chosen file included) to the form's `?report=csv` address with the
// CSRF token in its header, as htmx does, and saves the CSV it answers. Without
// JavaScript, the small report form still downloads through a plain form submission.
"use strict";
document.addEventListener("click", function (event) {
  var button = event.target.closest("button[data-download]");
  if (!button || !button.form) {
    return;
  }
  var form = button.form;
  event.preventDefault();
  event.stopPropagation();
  if (!form.reportValidity()) {
    return;
  }
  var status = document.getElementById("download-error");
  var token = form.querySelector("input[name=csrf_token]");
  var data = new FormData(form);
  data.delete("mode");
  fetch(button.getAttribute("formaction") || form.action, {
    method: "POST",
    credentials: "same-origin",
    headers: { "X-CSRF-Token": token ? token.value : "" },
    body: data,
  })
    .then(function (response) {
      if (!response.ok) {
        throw new Error("the server answered " + response.status + " " + response.statusText);
      }
      var disposition = response.headers.get("Content-Disposition") || "";
      var name = /filename="([^"]+)"/.exec(disposition);
      return response.blob().then(function (blob) {
        var link = document.createElement("a");
        link.href = URL.createObjectURL(blob);
        link.download = name ? name[1] : "report.csv";
        document.body.appendChild(link);
        link.click();
        link.remove();
        setTimeout(function () { URL.revokeObjectURL(link.href); }, 10000);
        if (status) {
          status.hidden = true;
        }
      });
    })
    .catch(function (error) {
      if (status) {
        status.textContent = "The report could not be downloaded: " + error.message + ".";
        status.hidden = false;
      }
    });
}, true);
