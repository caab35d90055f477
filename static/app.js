// kws dashboard: live updates and in-place actions on top of pages that work without it.
// No framework, no build step. Everything it inserts is either HTML the server rendered
// (and escaped) or text set with textContent.
"use strict";

(function () {
  // Every stream the page opened. A page leaving for the back/forward cache closes them (a
  // kept page would hold its connections: browsers allow six per server over HTTP/1.1, so a
  // few visited pages would leave none for the next); one shown again from that cache
  // reloads, as its rows are stale.
  var sources = [];
  function open(url) {
    var source = new EventSource(url);
    sources.push(source);
    return source;
  }
  window.addEventListener("pagehide", function () {
    sources.forEach(function (s) { s.close(); });
  });
  window.addEventListener("pageshow", function (e) {
    if (e.persisted) window.location.reload();
  });

  // Rows over SSE: `swap` replaces the element with the id (or adds it to its list),
  // `remove` drops it, `reload` (a gap in the stream) reloads the page.
  function live(url) {
    var source = open(url);
    source.addEventListener("swap", function (e) {
      var row = JSON.parse(e.data);
      var fresh = parse(row.html);
      if (!fresh) return;
      var old = document.getElementById(row.id);
      if (old) {
        old.replaceWith(fresh);
        return;
      }
      var list = document.querySelector('[data-live-list="' + row.list + '"]');
      if (!list) return;
      if (list.hasAttribute("data-prepend")) list.prepend(fresh);
      else list.append(fresh);
      var empty = document.getElementById(row.list + "s-empty");
      if (empty) empty.remove();
    });
    source.addEventListener("remove", function (e) {
      var old = document.getElementById(JSON.parse(e.data).id);
      if (old) old.remove();
    });
    source.addEventListener("reload", function () { window.location.reload(); });
    source.addEventListener("end", function () { source.close(); });
  }

  function parse(html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    if (t.content.firstElementChild && t.content.firstElementChild.tagName === "TR") {
      // A <tr> parses only inside a table.
      t.innerHTML = "<table><tbody>" + html.trim() + "</tbody></table>";
      return t.content.querySelector("tr");
    }
    return t.content.firstElementChild;
  }

  // Text streams: an instance's log lines, a job's output. A stream marked data-replace
  // starts with the same tail the page shows, so its first event after each (re)connection
  // replaces the page's lines: no line written meanwhile is lost or shown twice.
  function follow(pre) {
    var source = open(pre.getAttribute("data-follow"));
    var replace = pre.hasAttribute("data-replace");
    var fresh = false;
    source.addEventListener("open", function () { fresh = replace; });
    function add(text, cls) {
      if (fresh) {
        pre.textContent = "";
        fresh = false;
      }
      var span = document.createElement("span");
      if (cls) span.className = cls;
      span.textContent = text;
      pre.append(span);
      pre.scrollTop = pre.scrollHeight;
    }
    source.addEventListener("log", function (e) {
      var d = JSON.parse(e.data);
      add(d.line + "\n", d.stream);
    });
    source.addEventListener("stdout", function (e) { add(JSON.parse(e.data).text, "stdout"); });
    source.addEventListener("stderr", function (e) { add(JSON.parse(e.data).text, "stderr"); });
    var outcome = document.getElementById("outcome");
    function ended(text) { if (outcome) outcome.textContent = text; }
    source.addEventListener("started", function () { ended("Running…"); });
    source.addEventListener("exited", function (e) {
      var d = JSON.parse(e.data);
      ended("Exited with code " + d.code + " in " + d.wall_ms + " ms.");
    });
    source.addEventListener("timed_out", function () { ended("Stopped: it ran past its time limit."); });
    source.addEventListener("output_limit_exceeded", function () { ended("Stopped: it wrote more output than allowed."); });
    source.addEventListener("killed", function (e) { ended("Killed: " + JSON.parse(e.data).reason + "."); });
    source.addEventListener("failed", function (e) { ended("Failed: " + JSON.parse(e.data).reason + "."); });
    source.addEventListener("end", function () { source.close(); });
    source.onerror = function () { if (source.readyState === EventSource.CLOSED) source.close(); };
  }

  // CPU and memory: a sample every 2 s, the last 5 minutes drawn as two lines.
  function stats(now) {
    var url = now.getAttribute("data-stats");
    var chart = document.getElementById("stats-chart");
    var samples = [];
    var max = 150;
    function draw() {
      var lines = chart.querySelectorAll("polyline");
      var step = 300 / (max - 1);
      function points(pick) {
        return samples.map(function (s, i) {
          var v = Math.max(0, Math.min(100, pick(s)));
          return (i * step).toFixed(1) + "," + (80 - v * 0.8).toFixed(1);
        }).join(" ");
      }
      lines[0].setAttribute("points", points(function (s) { return s.cpu_percent; }));
      lines[1].setAttribute("points", points(function (s) {
        return s.memory_limit_bytes ? 100 * s.memory_bytes / s.memory_limit_bytes : 0;
      }));
    }
    function tick() {
      fetch(url, { credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(r.status);
        return r.json();
      }).then(function (s) {
        samples.push(s);
        if (samples.length > max) samples.shift();
        now.textContent = "CPU " + s.cpu_percent.toFixed(1) + "%, memory " +
          (s.memory_bytes / 1048576).toFixed(1) + " MiB of " +
          (s.memory_limit_bytes / 1048576).toFixed(0) + " MiB, " + s.pids + " processes";
        draw();
      }).catch(function () { /* not running now: keep the last line */ });
    }
    tick();
    setInterval(tick, 2000);
  }

  // In-place actions: post the form in the background; the live stream shows the result.
  function inplace(form) {
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var button = form.querySelector("button");
      if (button) button.disabled = true;
      fetch(form.action, {
        method: "POST",
        credentials: "same-origin",
        // The answer is a redirect to the page the form is on: not worth loading again.
        redirect: "manual",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams(new FormData(form)).toString(),
      }).then(function (r) {
        if (!r.ok && r.type !== "opaqueredirect") {
          // Show the error page's message where the user is.
          return r.text().then(function (html) {
            var doc = new DOMParser().parseFromString(html, "text/html");
            var msg = doc.querySelector(".error");
            alertBox(msg ? msg.textContent : "The action failed (" + r.status + ").");
          });
        }
      }).catch(function (e) { alertBox("The server could not be reached (" + e.message + ")."); })
        .finally(function () { if (button) button.disabled = false; });
    });
  }

  function alertBox(text) {
    var box = document.getElementById("flash");
    if (!box) {
      box = document.createElement("p");
      box.id = "flash";
      box.className = "error";
      box.setAttribute("role", "alert");
      document.getElementById("main").prepend(box);
    }
    box.textContent = text;
  }

  // A secret shown once, saved as a file from the page (no URL holds it).
  function download(button) {
    button.hidden = false;
    button.addEventListener("click", function () {
      var text = document.getElementById(button.getAttribute("data-from")).textContent;
      var url = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
      var a = document.createElement("a");
      a.href = url;
      a.download = button.getAttribute("data-download");
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var url = document.body.getAttribute("data-live");
    if (url) live(url);
    document.querySelectorAll("pre[data-follow]").forEach(follow);
    var now = document.querySelector("[data-stats]");
    if (now) stats(now);
    document.querySelectorAll("[data-download]").forEach(download);
    document.querySelectorAll("form[data-inplace]").forEach(inplace);
    // Rows added later get in-place forms too.
    new MutationObserver(function (changes) {
      changes.forEach(function (c) {
        c.addedNodes.forEach(function (n) {
          if (n.querySelectorAll) n.querySelectorAll("form[data-inplace]").forEach(inplace);
        });
      });
    }).observe(document.getElementById("main"), { childList: true, subtree: true });
  });
})();
