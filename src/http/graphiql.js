// GraphiQL on this server's own endpoints: queries and mutations over HTTP, subscriptions
// over WebSocket (graphql-transport-ws, the client GraphiQL bundles).
(function () {
  const http = new URL('/graphql', window.location.href);
  const ws = new URL('/graphql/ws', window.location.href);
  ws.protocol = ws.protocol === 'https:' ? 'wss:' : 'ws:';
  const defaultQuery = `# store-monitor: how much of their business hours each store was offline.
#
# Run an operation with Ctrl-Enter (or the ▶ button). The Docs pane (the book icon,
# top left) describes every type and field.

query Latest {
  dataset { stores polls newestPoll dataVersion }
  reports(first: 5) {
    edges { node { id status interpolation asOf progress csvUrl } }
  }
}

mutation Trigger {
  triggerReport(input: { interpolation: NEAREST }) { id status }
}

# Paste a report's id here to follow it until it is COMPLETE.
subscription Follow($id: ID!) {
  report(id: $id) { status storesDone storesTotal progress csvUrl error }
}
`;
  const fetcher = GraphiQL.createFetcher({ url: http.toString(), subscriptionUrl: ws.toString() });
  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(GraphiQL, {
      fetcher,
      defaultQuery,
      defaultEditorToolsVisibility: true,
    }),
  );
})();
