// GraphiQL over this server's API: queries over HTTP, subscriptions over a WebSocket on the
// same path. A file, not an inline script, so the page's Content-Security-Policy allows
// scripts from this server alone.
(function () {
  var http = new URL("/graphql", window.location.origin);
  var ws = new URL("/graphql", window.location.origin);
  ws.protocol = ws.protocol === "https:" ? "wss:" : "ws:";
  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(GraphiQL, {
      fetcher: GraphiQL.createFetcher({
        url: http.toString(),
        subscriptionUrl: ws.toString(),
      }),
      defaultEditorToolsVisibility: true,
    })
  );
})();
