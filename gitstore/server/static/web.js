// gitstore's web page: conveniences only. Every page works without this script: the links it
// takes over ("load more", "show the end") lead to pages the server renders by themselves.
// It inserts only HTML the server rendered (escaped there), and runs under a CSP that allows no
// inline script.
"use strict";

(function () {
  function fetchRows(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } }).then(
      function (response) {
        if (!response.ok) {
          throw new Error("the server answered " + response.status);
        }
        return response.text();
      }
    ).then(function (html) {
      var holder = document.createElement("template");
      holder.innerHTML = html;
      var body = holder.content.querySelector("div.win");
      if (!body) {
        throw new Error("the answer held no lines");
      }
      return body;
    });
  }

  function sizeText(n) {
    var units = ["B", "KiB", "MiB", "GiB", "TiB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i += 1;
    }
    return (i ? n.toFixed(1) : String(n)) + " " + units[i];
  }

  // A gap's bounds moved: show what is left, or drop it when the windows on both sides meet.
  function updateGap(gap) {
    var start = Number(gap.dataset.start);
    var stop = Number(gap.dataset.stop);
    if (start >= stop) {
      gap.remove();
      return;
    }
    var size = gap.querySelector(".gap-size");
    if (size) {
      size.textContent = sizeText(stop - start) + " not shown";
    }
    var down = gap.querySelector('[data-more="down"]');
    var up = gap.querySelector('[data-more="up"]');
    if (down) down.setAttribute("href", "?start=" + start);
    if (up) up.setAttribute("href", "?before=" + stop);
  }

  function failed(where, error) {
    var note = document.createElement("span");
    note.className = "cut-note";
    note.setAttribute("role", "alert");
    note.textContent = "Could not load: " + error.message;
    where.appendChild(note);
  }

  function loadMore(link) {
    var gap = link.closest("div.gap");
    var table = link.closest("div.lines");
    if (!gap || !table || gap.dataset.busy) return;
    gap.dataset.busy = "1";
    var start = gap.dataset.start;
    var stop = gap.dataset.stop;
    var down = link.dataset.more === "down";
    var url = table.dataset.src + (down ? "?start=" + start + "&until=" + stop : "?before=" + stop + "&after=" + start);
    fetchRows(url).then(function (body) {
      if (down) {
        gap.before(body);
        gap.dataset.start = body.dataset.stop;
      } else {
        gap.after(body);
        gap.dataset.stop = body.dataset.start;
      }
      delete gap.dataset.busy;
      updateGap(gap);
      search.refresh();
    }).catch(function (error) {
      delete gap.dataset.busy;
      failed(link.parentNode, error);
    });
  }

  function loadLazy(lazy) {
    fetchRows(lazy.dataset.lazy).then(function (body) {
      var gap = lazy.previousElementSibling;
      lazy.replaceWith(body);
      if (gap && gap.classList.contains("gap")) {
        gap.dataset.stop = body.dataset.start;
        updateGap(gap);
      }
      document.documentElement.dataset.tailLoaded = "1";
      search.refresh();
    }).catch(function (error) {
      failed(lazy, error);
    });
  }

  // Search within the lines shown: mark matching rows, step through them.
  var search = {
    form: null,
    input: null,
    count: null,
    hits: [],
    index: -1,
    refresh: function () {
      if (!this.input) return;
      var query = this.input.value.toLowerCase();
      if (query === "" && this.hits.length === 0) {
        this.count.textContent = "";
        return; // nothing marked, nothing to mark: leave thousands of rows alone
      }
      var rows = document.querySelectorAll("div.lines div.win div.l");
      this.hits = [];
      for (var i = 0; i < rows.length; i++) {
        var row = rows[i];
        var cell = row.querySelector(".t");
        var hit = query !== "" && cell !== null && cell.textContent.toLowerCase().indexOf(query) !== -1;
        row.classList.toggle("hit", hit);
        row.classList.remove("current");
        if (hit) this.hits.push(row);
      }
      this.index = -1;
      this.count.textContent = query === "" ? "" : this.hits.length + " line" + (this.hits.length === 1 ? "" : "s");
    },
    step: function (by) {
      if (!this.hits.length) return;
      if (this.index >= 0) this.hits[this.index].classList.remove("current");
      this.index = (this.index + by + this.hits.length) % this.hits.length;
      var row = this.hits[this.index];
      row.classList.add("current");
      row.scrollIntoView({ block: "center" });
      this.count.textContent = (this.index + 1) + " of " + this.hits.length + " lines";
    },
  };

  function setUpSearch() {
    var form = document.querySelector("form[data-find]");
    if (!form) return;
    search.form = form;
    search.input = form.querySelector("input");
    search.count = form.querySelector(".find-count");
    form.hidden = false;
    var timer = null;
    search.input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () { search.refresh(); }, 120);
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      search.step(1);
    });
    search.input.addEventListener("keydown", function (event) {
      if (event.key === "Enter") {
        event.preventDefault();
        clearTimeout(timer);
        if (search.index === -1) search.refresh();
        search.step(event.shiftKey ? -1 : 1);
      }
    });
    form.querySelectorAll("[data-find-step]").forEach(function (button) {
      button.addEventListener("click", function () {
        search.step(Number(button.dataset.findStep));
      });
    });
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-more]");
    if (link && link.closest("div.lines")) {
      event.preventDefault();
      loadMore(link);
    }
  });

  document.addEventListener("DOMContentLoaded", function () {
    setUpSearch();
    document.querySelectorAll("div[data-lazy]").forEach(loadLazy);
  });
})();
