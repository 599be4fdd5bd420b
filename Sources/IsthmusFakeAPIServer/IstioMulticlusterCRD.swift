import IsthmusKubeTypes

extension FakeAPIServer {
    /// Registers Isthmus' own CRD, IstioMulticluster (`deckhouse.io/v1alpha1`,
    /// cluster-scoped, status subresource, unknown fields kept), as dev mode
    /// and the tests that pair clusters need it. The chart's full CRD, with
    /// its schema and printer columns, is `charts/isthmus/crds/`.
    public func installIstioMulticlusterCRD() throws {
        let crd = try JSON(parsing: """
            {"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition",
             "metadata":{"name":"istiomulticlusters.deckhouse.io"},
             "spec":{"group":"deckhouse.io","scope":"Cluster",
               "names":{"plural":"istiomulticlusters","singular":"istiomulticluster","kind":"IstioMulticluster","listKind":"IstioMulticlusterList"},
               "versions":[{"name":"v1alpha1","served":true,"storage":true,"subresources":{"status":{}},
                 "schema":{"openAPIV3Schema":{"type":"object","x-kubernetes-preserve-unknown-fields":true}}}]}}
            """)
        try create(resource: "customresourcedefinitions", group: "apiextensions.k8s.io", object: crd)
    }
}
