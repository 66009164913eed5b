// kgo-gitops-health computes the health of one Kubernetes object the way the GitOps tools do, so that the
// tests can assert what Argo CD and Flux would show for the objects the real operator produced:
//
//	kgo-gitops-health lua --script FILE [--open-libs] < object.json   # Argo CD: a resource.customizations.health Lua script
//	kgo-gitops-health kstatus < object.json                          # Flux: sigs.k8s.io/cli-utils/pkg/kstatus/status
//
// Both print one JSON line {"status":"...","message":"..."} on stdout and exit 0 (for a list, as from
// `kubectl get -o json`, one line per item, in order). Anything that Argo CD or
// kstatus would turn into an error (a Lua error, a timeout, a result that is not a valid health) is printed on
// stderr with exit code 1, as is bad input or bad usage.
//
// The Lua side mirrors Argo CD's util/lua/lua.go (VM.runLuaWithResourceActionParameters and
// VM.ExecuteHealthLua): the same engine (github.com/yuin/gopher-lua), the same libraries, the same conversion
// of the object into the global `obj`, the same 1 s timeout and the same checks of the returned table.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const usage = `usage:
  kgo-gitops-health lua --script FILE [--open-libs] < object.json
  kgo-gitops-health kstatus < object.json
Reads one Kubernetes object (JSON) on stdin and prints {"status":"...","message":"..."}. Given a list
(an object with an items array, as from kubectl get -o json), prints one such line per item, in order.
--open-libs runs the script as Argo CD does with resource.customizations.useOpenLibs.<group>_<kind>: true
(all of gopher-lua's libraries). Without it, as for any argocd-cm health check by default, only package,
base and table are open (and require("os") gives os.time and os.date): string.*, math.*, io.* are not available.`

// Result is the one line printed on stdout.
type Result struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// luaTimeout is Argo CD's: a script that runs longer fails.
const luaTimeout = 1 * time.Second

// validHealth is Argo CD's isValidHealthStatusCode.
var validHealth = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	results, err := run(os.Args[1:], os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kgo-gitops-health:", err)
		os.Exit(1)
	}
	for _, res := range results {
		fmt.Print(encode(res))
	}
}

// encode is the stdout line: JSON without HTML escaping, so that "lag 5 > 1" reads as it is.
func encode(res *Result) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(res) // a struct of two strings always encodes; Encode ends the line
	return buf.String()
}

func run(args []string, stdin io.Reader) ([]*Result, error) {
	if len(args) == 0 {
		return nil, errors.New(usage)
	}
	switch args[0] {
	case "lua":
		script, openLibs := "", false
		for i := 1; i < len(args); i++ {
			switch {
			case args[i] == "--script" && i+1 < len(args):
				i++
				script = args[i]
			case len(args[i]) > 9 && args[i][:9] == "--script=":
				script = args[i][9:]
			case args[i] == "--open-libs":
				openLibs = true
			default:
				return nil, fmt.Errorf("unexpected argument %q\n%s", args[i], usage)
			}
		}
		if script == "" {
			return nil, errors.New("lua needs --script FILE\n" + usage)
		}
		src, err := os.ReadFile(script)
		if err != nil {
			return nil, err
		}
		return each(stdin, func(obj *unstructured.Unstructured) (*Result, error) {
			return LuaHealth(obj, string(src), openLibs)
		})
	case "kstatus":
		if len(args) != 1 {
			return nil, fmt.Errorf("kstatus takes no arguments\n%s", usage)
		}
		return each(stdin, KstatusHealth)
	case "-h", "--help", "help":
		return nil, errors.New(usage)
	default:
		return nil, fmt.Errorf("unknown command %q\n%s", args[0], usage)
	}
}

// each computes f for the object on stdin, or for every item of a list, stopping at the first error.
func each(stdin io.Reader, f func(*unstructured.Unstructured) (*Result, error)) ([]*Result, error) {
	obj, err := readObject(stdin)
	if err != nil {
		return nil, err
	}
	if !obj.IsList() {
		res, err := f(obj)
		if err != nil {
			return nil, err
		}
		return []*Result{res}, nil
	}
	list, err := obj.ToList()
	if err != nil {
		return nil, fmt.Errorf("stdin is a list: %w", err)
	}
	results := make([]*Result, 0, len(list.Items))
	for i := range list.Items {
		item := &list.Items[i]
		res, err := f(item)
		if err != nil {
			return nil, fmt.Errorf("item %d (%s %s/%s): %w", i, item.GetKind(), item.GetNamespace(), item.GetName(), err)
		}
		results = append(results, res)
	}
	return results, nil
}

// readObject decodes exactly one JSON object as client-go's unstructured decoding does (integers become
// int64, other numbers float64), which is what Argo CD's and Flux's controllers hold in memory.
func readObject(r io.Reader) (*unstructured.Unstructured, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("reading stdin: %w", err)
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, errors.New("no object on stdin (expected one Kubernetes object as JSON)")
	}
	var m map[string]any
	if err := utiljson.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("stdin is not one JSON object: %w", err)
	}
	if m == nil {
		return nil, errors.New("stdin is not one JSON object")
	}
	return &unstructured.Unstructured{Object: m}, nil
}

// KstatusHealth is what Flux's health checks (kustomize-controller `wait`/`healthChecks`, helm-controller) compute.
func KstatusHealth(obj *unstructured.Unstructured) (*Result, error) {
	res, err := status.Compute(obj)
	if err != nil {
		return nil, fmt.Errorf("kstatus: %w", err)
	}
	return &Result{Status: res.Status.String(), Message: res.Message}, nil
}

// LuaHealth runs a health script as Argo CD does for a resource.customizations.health.<group>_<kind> entry.
func LuaHealth(obj *unstructured.Unstructured, script string, openLibs bool) (*Result, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	// Argo CD opens these even when the libraries are skipped, then its safe os (below).
	for _, pair := range []struct {
		n string
		f lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(pair.f), NRet: 0, Protect: true}, lua.LString(pair.n)); err != nil {
			return nil, err
		}
	}
	if err := openSafeOs(l); err != nil {
		return nil, err
	}

	ctx, cancel := context.WithTimeout(context.Background(), luaTimeout)
	defer cancel()
	l.SetContext(ctx)

	l.SetGlobal("actionParams", l.CreateTable(0, 0)) // Argo CD sets it for health scripts too (empty)
	l.SetGlobal("obj", decodeValue(l, obj.Object))

	err := l.DoString(script)
	var apiErr *lua.ApiError
	if errors.As(err, &apiErr) && apiErr.Type == lua.ApiErrorRun {
		apiErr.StackTrace = "" // as Argo CD: the message without gopher-lua's stack trace
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("lua: the script ran longer than %s (Argo CD stops it): %w", luaTimeout, err)
		}
		return nil, fmt.Errorf("lua: %w", err)
	}

	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTTable:
	case lua.LTNil:
		// Argo CD treats this as "no health status" (the resource shows none): for a test, a bug in the script.
		return nil, errors.New("lua: the script returned nil, not a table with status and message")
	default:
		return nil, fmt.Errorf("lua: expect table output from Lua script, not %s", ret.Type())
	}
	tbl := ret.(*lua.LTable)
	// Argo CD encodes the table to JSON and decodes {status, message} from it: both must be strings.
	st, ok := tbl.RawGetString("status").(lua.LString)
	if !ok {
		return nil, fmt.Errorf("lua: the returned table's status is %s, not a string", tbl.RawGetString("status").Type())
	}
	msg := ""
	switch m := tbl.RawGetString("message").(type) {
	case lua.LString:
		msg = string(m)
	case *lua.LNilType:
	default:
		return nil, fmt.Errorf("lua: the returned table's message is %s, not a string", m.Type())
	}
	if !validHealth[string(st)] {
		return nil, fmt.Errorf("lua: invalid health status %q (Argo CD would show Unknown \"Lua returned an invalid health status\"); "+
			"valid: Healthy, Progressing, Degraded, Suspended, Missing, Unknown", string(st))
	}
	return &Result{Status: string(st), Message: msg}, nil
}

// openSafeOs mirrors Argo CD's safe os library as it behaves: its OpenSafeOs registers os.time and os.date
// under the name of the already-open `table` module, which gopher-lua's RegisterModule leaves untouched, so
// there is no global `os` (unless --open-libs); what works is `local os = require("os")`, which loads the
// safe module {time, date} that Argo CD preloads. Its time/date are copies of gopher-lua's; here they are
// gopher-lua's own, taken from a throwaway state.
func openSafeOs(l *lua.LState) error {
	tmp := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer tmp.Close()
	lua.OpenOs(tmp)
	full, ok := tmp.Get(-1).(*lua.LTable)
	if !ok {
		return errors.New("lua: gopher-lua's os library did not open")
	}
	funcs := map[string]lua.LGFunction{}
	for _, name := range []string{"time", "date"} {
		fn, ok := full.RawGetString(name).(*lua.LFunction)
		if !ok || !fn.IsG {
			return fmt.Errorf("lua: gopher-lua has no os.%s", name)
		}
		funcs[name] = fn.GFunction
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), funcs))
		return 1
	})
	return nil
}

// decodeValue is Argo CD's: maps become tables keyed by string, slices become arrays (1-based), numbers
// become Lua numbers, null and anything else nil.
func decodeValue(l *lua.LState, value any) lua.LValue {
	switch converted := value.(type) {
	case bool:
		return lua.LBool(converted)
	case float64:
		return lua.LNumber(converted)
	case string:
		return lua.LString(converted)
	case json.Number:
		return lua.LString(converted)
	case int:
		return lua.LNumber(converted)
	case int32:
		return lua.LNumber(converted)
	case int64:
		return lua.LNumber(converted)
	case []any:
		arr := l.CreateTable(len(converted), 0)
		for _, item := range converted {
			arr.Append(decodeValue(l, item))
		}
		return arr
	case map[string]any:
		tbl := l.CreateTable(0, len(converted))
		for key, item := range converted {
			tbl.RawSetH(lua.LString(key), decodeValue(l, item))
		}
		return tbl
	}
	return lua.LNil
}
