// otelviewer: a little progressive enhancement. Every page works without it;
// with it, the waterfall collapses, the search form lists a service's operations,
// and selects that change a chart submit themselves.
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  function depthOf(item) {
    return parseInt(item.getAttribute("data-depth") || "0", 10);
  }

  // Hide or show the rows below `item` (its descendants), keeping the rows of
  // collapsed descendants hidden when expanding.
  function setSubtree(item, expanded) {
    var depth = depthOf(item);
    var toggle = item.querySelector(".wf-toggle");
    if (toggle) {
      toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
    }
    var skipBelow = null;
    for (var next = item.nextElementSibling; next; next = next.nextElementSibling) {
      var d = depthOf(next);
      if (d <= depth) break;
      if (!expanded) {
        next.hidden = true;
        continue;
      }
      if (skipBelow !== null && d > skipBelow) continue;
      skipBelow = null;
      next.hidden = false;
      var t = next.querySelector(".wf-toggle");
      if (t && t.getAttribute("aria-expanded") === "false") skipBelow = d;
    }
  }

  function setAll(expanded) {
    var items = document.querySelectorAll(".wf-item");
    for (var i = 0; i < items.length; i++) {
      var t = items[i].querySelector(".wf-toggle");
      if (t) t.setAttribute("aria-expanded", expanded ? "true" : "false");
      items[i].hidden = !expanded && depthOf(items[i]) > 0;
    }
  }

  // Make a span visible (expanding its ancestors), open its detail, scroll to it.
  function reveal(id) {
    var item = document.getElementById(id);
    if (!item || !item.classList.contains("wf-item")) return;
    var depth = depthOf(item);
    for (var prev = item.previousElementSibling; prev && depth > 0; prev = prev.previousElementSibling) {
      if (!prev.classList.contains("wf-item")) continue;
      var d = depthOf(prev);
      if (d < depth) {
        depth = d;
        var t = prev.querySelector(".wf-toggle");
        if (t && t.getAttribute("aria-expanded") === "false") setSubtree(prev, true);
      }
    }
    var details = item.querySelector("details.wf-span");
    if (details) details.open = true;
    item.scrollIntoView({ block: "center" });
  }

  document.addEventListener("click", function (event) {
    var target = event.target;
    if (!(target instanceof Element)) return;
    var toggle = target.closest(".wf-toggle");
    if (toggle) {
      // The toggle sits inside the row's <summary>: do not open the detail too.
      event.preventDefault();
      event.stopPropagation();
      setSubtree(toggle.closest(".wf-item"), toggle.getAttribute("aria-expanded") === "false");
      return;
    }
    var action = target.closest("[data-action]");
    if (action) {
      var name = action.getAttribute("data-action");
      if (name === "expand-all") setAll(true);
      if (name === "collapse-all") setAll(false);
    }
  });

  function revealHash() {
    if (location.hash.indexOf("#span-") === 0) reveal(location.hash.slice(1));
  }
  window.addEventListener("hashchange", revealHash);

  // The search form: list the chosen service's operations.
  function watchService() {
    var service = document.getElementById("service");
    var operation = document.getElementById("operation");
    var template = service && service.getAttribute("data-operations-url");
    if (!service || !operation || !template) return;
    service.addEventListener("change", function () {
      while (operation.options.length > 1) operation.remove(1);
      if (!service.value) return;
      var url = template.replace("__S__", encodeURIComponent(service.value));
      fetch(url, { headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : { data: [] }; })
        .then(function (body) {
          (body.data || []).forEach(function (name) {
            operation.add(new Option(name, name));
          });
        })
        .catch(function () { /* the list stays "All operations" */ });
    });
  }

  function watchAutosubmit() {
    var selects = document.querySelectorAll("select.js-autosubmit");
    for (var i = 0; i < selects.length; i++) {
      selects[i].addEventListener("change", function (e) { e.target.form.submit(); });
    }
  }

  function start() {
    watchService();
    watchAutosubmit();
    revealHash();
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
