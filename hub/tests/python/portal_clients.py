"""Checks the portal with clients the project did not write.

Usage: portal_clients.py <portal url> <dataset id> <search word> <organization name> <tag>

- ckanapi's RemoteCKAN: package_search (q, fq, rows), package_show, the list actions, and a
  NotFound for a missing dataset;
- rdflib: /catalog.jsonld parses as JSON-LD and holds the dataset as a dcat:Dataset with a
  distribution, its download URL and SHA-256 checksum.

Prints OK and exits 0 when every check holds; an assertion error otherwise.
"""

import json
import sys
import urllib.request

import ckanapi
from rdflib import Graph, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

url, dataset_id, word, org, tag = sys.argv[1:6]

ckan = ckanapi.RemoteCKAN(url, user_agent="govdc-portal-test")

found = ckan.action.package_search(q=word)
assert found["count"] >= 1, found
assert dataset_id in [p["name"] for p in found["results"]], found

filtered = ckan.action.package_search(q=word, fq=f"organization:{org} tags:{tag}", rows=5)
assert [p["id"] for p in filtered["results"]] == [dataset_id], filtered
none = ckan.action.package_search(fq="organization:nobody")
assert none["count"] == 0 and none["results"] == [], none
paged = ckan.action.package_search(rows=1, start=0)
assert len(paged["results"]) == 1 and paged["count"] >= 1, paged

package = ckan.action.package_show(id=dataset_id)
assert package["id"] == dataset_id, package
assert package["organization"]["name"] == org, package
assert tag in [t["name"] for t in package["tags"]], package
assert package["num_resources"] == len(package["resources"]) >= 1, package
extras = {e["key"]: e["value"] for e in package["extras"]}
assert {"version", "record_count", "openness"} <= extras.keys(), extras
for resource in package["resources"]:
    assert resource["url"].startswith(url + "/download/" + dataset_id + "/"), resource
    assert len(resource["hash"]) == 64 and resource["size"] > 0, resource

try:
    ckan.action.package_show(id="no.such-dataset")
    raise AssertionError("package_show of a missing dataset succeeded")
except ckanapi.NotFound:
    pass
try:
    ckan.action.package_search(rows="many")
    raise AssertionError("package_search with rows=many succeeded")
except ckanapi.ValidationError:
    pass

assert org in ckan.action.organization_list(), "organization_list"
assert tag in ckan.action.tag_list(), "tag_list"
assert any(l["id"] == package["license_id"] for l in ckan.action.license_list()), "license_list"

# A GET with query parameters, as a browser or curl would send it.
with urllib.request.urlopen(f"{url}/api/3/action/package_show?id={dataset_id}") as response:
    assert json.load(response)["result"]["id"] == dataset_id

graph = Graph()
graph.parse(f"{url}/catalog.jsonld", format="json-ld")
SPDX = Namespace("http://spdx.org/rdf/terms#")
catalogs = list(graph.subjects(RDF.type, DCAT.Catalog))
assert len(catalogs) == 1, catalogs
datasets = [d for d in graph.subjects(RDF.type, DCAT.Dataset)
            if str(graph.value(d, DCTERMS.identifier)) == dataset_id]
assert len(datasets) == 1, list(graph.subjects(RDF.type, DCAT.Dataset))
dataset = datasets[0]
assert (catalogs[0], DCAT.dataset, dataset) in graph
assert graph.value(dataset, DCTERMS.title) is not None
assert graph.value(dataset, DCTERMS.publisher) is not None
assert tag in [str(k) for k in graph.objects(dataset, DCAT.keyword)]
distributions = list(graph.objects(dataset, DCAT.distribution))
assert distributions, "no distribution"
for distribution in distributions:
    download = graph.value(distribution, DCAT.downloadURL)
    assert isinstance(download, URIRef) and str(download).startswith(url + "/download/"), download
    checksum = graph.value(distribution, SPDX.checksum)
    assert len(str(graph.value(checksum, SPDX.checksumValue))) == 64, checksum
    assert graph.value(distribution, DCAT.mediaType) is not None

print("OK")
