// Where the API lives. Empty means the origin that served this page (the normal case: the
// service serves the UI itself). When the UI is served elsewhere, set `apiBase` here, e.g.
// "http://localhost:8000", or open the page with `?api=http://localhost:8000`.
export default {
  apiBase: "",
};
