package main

// The chart's Argo CD health scripts and kstatus on hand-written objects, one per case of the contract
// (charts/kafka-group-operator/argocd/*.lua). The Rust tests run the same tool on objects the real operator wrote.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func object(t *testing.T, kind, rest string) *unstructured.Unstructured {
	t.Helper()
	js := `{"apiVersion":"kafkagroups.dev/v1alpha1","kind":"` + kind + `",` + rest + `}`
	u, err := readObject(strings.NewReader(js))
	if err != nil {
		t.Fatalf("fixture %s: %v", js, err)
	}
	return u
}

// meta is metadata at generation 2; observed(...) is a status that observed it.
const meta = `"metadata":{"name":"x","namespace":"ns","generation":2}`

func observed(fields string) string {
	if fields != "" {
		fields = "," + fields
	}
	return meta + `,"status":{"observedGeneration":2` + fields + `}`
}

func conds(cs ...string) string { return `"conditions":[` + strings.Join(cs, ",") + `]` }

func c(typ, st, reason, msg string) string {
	return `{"type":"` + typ + `","status":"` + st + `","reason":"` + reason + `","message":"` + msg + `"}`
}

type luaCase struct {
	name, rest, status, message string
}

func runLua(t *testing.T, file, kind string, cases []luaCase) {
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "kafka-group-operator", "argocd", file))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LuaHealth(object(t, kind, tc.rest), string(src), false)
			if err != nil {
				t.Fatalf("lua error: %v", err)
			}
			if got.Status != tc.status || got.Message != tc.message {
				t.Errorf("got %s %q, want %s %q", got.Status, got.Message, tc.status, tc.message)
			}
		})
	}
}

// Cases every kind shares.
func common(blockedMsg string) []luaCase {
	return []luaCase{
		{"no status", meta, "Progressing", "waiting for the operator"},
		{"old generation", meta + `,"status":{"observedGeneration":1,` + conds(c("Ready", "True", "Ready", "")) + `}`, "Progressing", "waiting for the operator"},
		{"no observedGeneration", meta + `,"status":{}`, "Progressing", "waiting for the operator"},
		{"deleting", `"metadata":{"name":"x","generation":2,"deletionTimestamp":"2026-12-07T00:00:00Z"},"status":{"observedGeneration":2}`, "Progressing", "deleting"},
		{"deletion blocked", `"metadata":{"name":"x","generation":2,"deletionTimestamp":"2026-12-07T00:00:00Z"},"status":{"observedGeneration":2,` +
			conds(c("DeletionBlocked", "True", "GroupNotEmpty", blockedMsg)) + `}`, "Degraded", "GroupNotEmpty: " + blockedMsg},
	}
}

func TestKafkaClusterLua(t *testing.T) {
	runLua(t, "kafkacluster.lua", "KafkaCluster", append((common("2 groups use it")), []luaCase{
		{"ready with version", observed(`"kafkaVersion":"4.1","brokerCount":3,` + conds(c("Ready", "True", "Connected", "ok"))), "Healthy", "Kafka 4.1, 3 brokers"},
		{"ready one broker", observed(`"kafkaVersion":"4.1","brokerCount":1,` + conds(c("Ready", "True", "Connected", "ok"))), "Healthy", "Kafka 4.1, 1 broker"},
		{"ready without version", observed(conds(c("Ready", "True", "Connected", "cluster abc"))), "Healthy", "Connected: cluster abc"},
		{"unreachable", observed(conds(c("Ready", "False", "Unreachable", "cannot reach kafka:9092"), c("Reconciling", "True", "Retrying", ""))), "Degraded", "Unreachable: cannot reach kafka:9092"},
		{"stalled wins", observed(conds(c("Ready", "True", "Connected", ""), c("Stalled", "True", "BadSecret", "no such secret"))), "Degraded", "BadSecret: no such secret"},
		{"reconciling", observed(conds(c("Reconciling", "True", "Connecting", ""))), "Progressing", "Connecting"},
		{"ready unknown", observed(conds(c("Ready", "Unknown", "", ""))), "Progressing", "waiting for the operator"},
		{"condition without reason", observed(`"conditions":[{"type":"Ready","status":"False"}]`), "Degraded", "not ready"},
	}...))
}

func TestConsumerGroupLua(t *testing.T) {
	runLua(t, "consumergroup.lua", "ConsumerGroup", append((common("the group has 2 members")), []luaCase{
		{"ready", observed(`"state":"Stable","members":2,"totalLag":432,"lagStatus":"OK",` + conds(c("Ready", "True", "Observed", ""), c("LagWithinBudget", "True", "WithinBudget", ""))), "Healthy", "Stable, 2 members, lag 432 (OK)"},
		{"ready minimal", observed(conds(c("Ready", "True", "Observed", ""))), "Healthy", "observed, 0 members"},
		{"one member", observed(`"state":"Empty","members":1,` + conds(c("Ready", "True", "Observed", ""))), "Healthy", "Empty, 1 member"},
		{"over budget", observed(`"state":"Stable","members":2,` + conds(c("Ready", "True", "Observed", ""), c("LagWithinBudget", "False", "OverBudget", "lag 5000 > 1000"))), "Degraded", "LagWithinBudget: OverBudget: lag 5000 > 1000"},
		{"unobservable", observed(conds(c("Ready", "False", "ClusterNotReady", "KafkaCluster main is not Ready"))), "Degraded", "ClusterNotReady: KafkaCluster main is not Ready"},
		{"blocked before deletion", observed(conds(c("Ready", "True", "Observed", ""), c("DeletionBlocked", "True", "GroupNotEmpty", "members"))), "Degraded", "GroupNotEmpty: members"},
		{"stalled", observed(conds(c("Stalled", "True", "BadSpec", "topic missing"))), "Degraded", "BadSpec: topic missing"},
		{"reconciling", observed(conds(c("Reconciling", "True", "Observing", "first look"))), "Progressing", "Observing: first look"},
	}...))
}

func TestOffsetResetLua(t *testing.T) {
	cases := common("x")
	for _, p := range []struct{ phase, msg string }{{"Pending", "Pending"}, {"ScalingDown", "ScalingDown"}, {"Applying", "Applying"}, {"Restoring", "Restoring"}} {
		cases = append(cases, luaCase{p.phase, observed(`"phase":"` + p.phase + `"`), "Progressing", p.msg})
	}
	runLua(t, "offsetreset.lua", "OffsetReset", append(cases, []luaCase{
		{"no phase", observed(""), "Progressing", "pending"},
		{"waiting", observed(`"phase":"WaitingForInactive",` + conds(c("Waiting", "True", "GroupNotEmpty", "2 members"))), "Progressing", "WaitingForInactive: GroupNotEmpty: 2 members"},
		{"retrying", observed(`"phase":"Applying",` + conds(c("Retrying", "True", "Unreachable", "broker down"))), "Progressing", "Applying: Unreachable: broker down"},
		{"succeeded", observed(`"phase":"Succeeded",` + conds(c("Complete", "True", "Applied", "3 partitions"))), "Healthy", "Applied: 3 partitions"},
		{"already applied", observed(`"phase":"Succeeded",` + conds(c("Complete", "True", "AlreadyApplied", "applied at 2026-12-01T10:00:00Z"))), "Healthy", "AlreadyApplied: applied at 2026-12-01T10:00:00Z"},
		{"succeeded bare", observed(`"phase":"Succeeded"`), "Healthy", "Succeeded"},
		{"dry run", `"spec":{"dryRun":true},` + observed(`"phase":"Planned"`), "Healthy", "planned (dry run)"},
		{"planned on the way", observed(`"phase":"Planned"`), "Progressing", "Planned"},
		{"failed", observed(`"phase":"Failed",` + conds(c("Complete", "False", "Failed", "see Failed"), c("Failed", "True", "UnknownTopic", "no topic orders"))), "Degraded", "Failed: UnknownTopic: no topic orders"},
		{"failed via complete", observed(`"phase":"Failed",` + conds(c("Complete", "False", "Timeout", "group stayed active"))), "Degraded", "Failed: Timeout: group stayed active"},
		{"failed stalled", observed(`"phase":"Failed",` + conds(c("Stalled", "True", "BadTarget", "bad"))), "Degraded", "Failed: BadTarget: bad"},
		{"failed bare", observed(`"phase":"Failed"`), "Degraded", "Failed: no reason given"},
	}...))
}

// Malformed or sparse objects never make a script error (Argo CD would show the error instead of a health).
func TestLuaNeverErrors(t *testing.T) {
	for _, file := range []string{"kafkacluster.lua", "consumergroup.lua", "offsetreset.lua"} {
		src, err := os.ReadFile(filepath.Join("..", "..", "..", "charts", "kafka-group-operator", "argocd", file))
		if err != nil {
			t.Fatal(err)
		}
		for _, rest := range []string{
			`"status":{"observedGeneration":1}`,
			`"metadata":{}`,
			meta + `,"status":{"observedGeneration":2,"conditions":[{}],"phase":"Failed"}`,
			meta + `,"status":{"observedGeneration":2,"conditions":[{"type":"Ready","status":"True"}],"phase":"Succeeded"}`,
			meta + `,"status":{"observedGeneration":2,"conditions":[{"type":"Complete","status":"True"},{"type":"Waiting","status":"True"}],"phase":"Applying"}`,
			meta + `,"status":{"observedGeneration":2,"conditions":null,"phase":null}`,
		} {
			if _, err := LuaHealth(object(t, "X", rest), string(src), false); err != nil {
				t.Errorf("%s on {%s}: %v", file, rest, err)
			}
		}
	}
}

// What Flux's kstatus makes of the same conditions.
func TestKstatus(t *testing.T) {
	for _, tc := range []struct{ name, rest, want string }{
		{"old generation", meta + `,"status":{"observedGeneration":1}`, "InProgress"},
		{"ready", observed(conds(c("Ready", "True", "Observed", ""))), "Current"},
		{"not ready", observed(conds(c("Ready", "False", "Unreachable", "down"))), "InProgress"},
		{"reconciling", observed(conds(c("Reconciling", "True", "Observing", ""))), "InProgress"},
		{"stalled", observed(conds(c("Stalled", "True", "BadSpec", "x"), c("Ready", "False", "BadSpec", "x"))), "Failed"},
		{"deleting", `"metadata":{"name":"x","generation":2,"deletionTimestamp":"2026-12-07T00:00:00Z"}`, "Terminating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := KstatusHealth(object(t, "ConsumerGroup", tc.rest))
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tc.want {
				t.Errorf("got %s (%s), want %s", got.Status, got.Message, tc.want)
			}
		})
	}
}

// The command line contract: one JSON line on stdout; errors and invalid health are exit 1.
func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	obj := `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}`
	for _, tc := range []struct{ name, script, want string }{
		{"invalid status", `return {status = "Fine"}`, "invalid health status"},
		{"lua error", `return obj.status.phase`, "attempt to index"},
		{"no string library", `return {status = "Healthy", message = string.format("%d", 1)}`, "attempt to index"},
		{"nil", `return nil`, "returned nil"},
		{"not a table", `return "Healthy"`, "expect table output"},
		{"timeout", `while true do end`, "longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := run([]string{"lua", "--script", write(tc.name+".lua", tc.script)}, strings.NewReader(obj))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := run([]string{"kstatus"}, strings.NewReader("")); err == nil {
		t.Error("empty stdin accepted")
	}
	res, err := run([]string{"lua", "--script", write("os.lua", `local os = require("os"); return {status = "Healthy", message = tostring(os.time() > 0)}`)}, strings.NewReader(obj))
	if err != nil || len(res) != 1 || res[0].Message != "true" {
		t.Errorf("require(\"os\").time: %v %v", res, err)
	}
}

func TestEncodeIsOneLineWithoutHTMLEscapes(t *testing.T) {
	got := encode(&Result{Status: "Degraded", Message: "lag 5000 > 1000 & \"rising\""})
	want := `{"status":"Degraded","message":"lag 5000 > 1000 & \"rising\""}` + "\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A list (kubectl get -o json) gives one result per item, in order; an error names the item.
func TestList(t *testing.T) {
	list := `{"apiVersion":"v1","kind":"List","items":[
	  {"apiVersion":"kafkagroups.dev/v1alpha1","kind":"ConsumerGroup","metadata":{"name":"a","generation":1}},
	  {"apiVersion":"kafkagroups.dev/v1alpha1","kind":"ConsumerGroup","metadata":{"name":"b","generation":1},"status":{"observedGeneration":1}}]}`
	res, err := run([]string{"kstatus"}, strings.NewReader(list))
	if err != nil || len(res) != 2 {
		t.Fatalf("got %v %v", res, err)
	}
	script := filepath.Join("..", "..", "..", "charts", "kafka-group-operator", "argocd", "consumergroup.lua")
	res, err = run([]string{"lua", "--script", script}, strings.NewReader(list))
	if err != nil || len(res) != 2 || res[0].Message != "waiting for the operator" || res[1].Status != "Healthy" && res[1].Status != "Progressing" {
		t.Fatalf("got %v %v", res, err)
	}
	bad := filepath.Join(t.TempDir(), "bad.lua")
	if err := os.WriteFile(bad, []byte(`if obj.metadata.name == "b" then error("boom") end return {status = "Healthy"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := run([]string{"lua", "--script", bad}, strings.NewReader(list)); err == nil || !strings.Contains(err.Error(), "item 1 (ConsumerGroup /b)") {
		t.Errorf("got %v", err)
	}
	res, err = run([]string{"kstatus"}, strings.NewReader(`{"apiVersion":"v1","kind":"List","items":[]}`))
	if err != nil || len(res) != 0 {
		t.Errorf("empty list: %v %v", res, err)
	}
}
