// Live audience count on the design page: when a filter changes, ask the server how many
// participants match and show it, with any filter error next to its input. The page works
// without this script (the count is also shown after every submit).
(function () {
  "use strict";
  var form = document.getElementById("design-form");
  var output = document.getElementById("audience-count");
  var section = document.getElementById("section-filters");
  if (!form || !output || !section) { return; }
  var url = form.getAttribute("data-count-url");
  var token = form.querySelector('input[name="csrf_token"]').value;
  var timer = null;
  var latest = 0;

  function clearErrors() {
    var old = section.querySelectorAll(".js-error");
    for (var i = 0; i < old.length; i++) { old[i].remove(); }
    var marked = section.querySelectorAll('[data-js-invalid="true"]');
    for (var j = 0; j < marked.length; j++) {
      marked[j].removeAttribute("aria-invalid");
      marked[j].removeAttribute("data-js-invalid");
    }
  }

  function showError(inputId, message) {
    var p = document.createElement("p");
    p.className = "field-error js-error";
    p.textContent = message;
    var input = inputId ? document.getElementById(inputId) : null;
    if (input) {
      p.id = inputId + "-js-error";
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("data-js-invalid", "true");
      input.insertAdjacentElement("afterend", p);
    } else {
      output.insertAdjacentElement("afterend", p);
    }
  }

  function setCount(text, strong) {
    output.textContent = "";
    if (strong) {
      var b = document.createElement("strong");
      b.textContent = strong;
      output.appendChild(b);
    }
    output.appendChild(document.createTextNode(text));
  }

  function refresh() {
    var request = ++latest;
    setCount("Counting participants…");
    fetch(url, {
      method: "POST",
      body: new FormData(form),
      headers: { "X-CSRF-Token": token, "Accept": "application/json" },
      credentials: "same-origin"
    }).then(function (response) {
      var type = response.headers.get("content-type") || "";
      if (type.indexOf("application/json") === -1) { throw new Error("not json"); }
      return response.json();
    }).then(function (body) {
      if (request !== latest) { return; }
      clearErrors();
      if (body.count === null || body.count === undefined) {
        setCount("Fix the filters to see how many participants match");
        (body.errors || []).forEach(function (e) { showError(e.input, e.message); });
      } else {
        setCount(" participants match", body.count.toLocaleString("en-US"));
      }
    }).catch(function () {
      if (request === latest) { setCount("Could not count the participants; submit the form to update."); }
    });
  }

  function schedule() {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(refresh, 350);
  }

  section.addEventListener("input", schedule);
  section.addEventListener("change", schedule);
})();
