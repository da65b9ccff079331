package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// The subset of targetcli-fb's saveconfig.json (rtslib-fb's RTSRoot.dump)
// that ImportLIO reads. Unknown fields are ignored.
type lioSaveConfig struct {
	StorageObjects []lioStorageObject `json:"storage_objects"`
	Targets        []lioTarget        `json:"targets"`
	FabricModules  []lioFabricModule  `json:"fabric_modules"`
}

type lioStorageObject struct {
	Name       string        `json:"name"`
	Plugin     string        `json:"plugin"`
	Dev        string        `json:"dev"`
	Size       int64         `json:"size"`
	WWN        string        `json:"wwn"`
	WriteBack  *lioBool      `json:"write_back"`
	ReadOnly   lioBool       `json:"readonly"`
	Nullio     lioBool       `json:"nullio"`
	Attributes lioAttributes `json:"attributes"`
	ALUATPGs   []struct {
		Name string `json:"name"`
	} `json:"alua_tpgs"`
}

type lioTarget struct {
	WWN    string   `json:"wwn"`
	Fabric string   `json:"fabric"`
	TPGs   []lioTPG `json:"tpgs"`
}

type lioTPG struct {
	Tag        int64         `json:"tag"`
	Enable     *lioBool      `json:"enable"`
	Attributes lioAttributes `json:"attributes"`
	Parameters lioAttributes `json:"parameters"`
	Portals    []lioPortal   `json:"portals"`
	LUNs       []lioLUN      `json:"luns"`
	NodeACLs   []lioNodeACL  `json:"node_acls"`
	lioCHAP
}

// lioCHAP holds the CHAP credentials rtslib dumps on TPGs and node ACLs.
type lioCHAP struct {
	UserID         string `json:"chap_userid"`
	Password       string `json:"chap_password"`
	MutualUserID   string `json:"chap_mutual_userid"`
	MutualPassword string `json:"chap_mutual_password"`
}

type lioPortal struct {
	IPAddress string  `json:"ip_address"`
	Port      int64   `json:"port"`
	ISER      lioBool `json:"iser"`
	Offload   lioBool `json:"offload"`
}

type lioLUN struct {
	Index         int64  `json:"index"`
	StorageObject string `json:"storage_object"`
}

type lioNodeACL struct {
	NodeWWN    string         `json:"node_wwn"`
	MappedLUNs []lioMappedLUN `json:"mapped_luns"`
	lioCHAP
}

type lioMappedLUN struct {
	Index        int64   `json:"index"`
	TPGLUN       int64   `json:"tpg_lun"`
	WriteProtect lioBool `json:"write_protect"`
}

type lioFabricModule struct {
	Name                string  `json:"name"`
	DiscoveryEnableAuth lioBool `json:"discovery_enable_auth"`
}

// lioBool is a flag: rtslib-fb writes JSON booleans; 0 and 1, as in
// configfs, are accepted too.
type lioBool bool

// UnmarshalJSON accepts true, false, 0, 1, "0", "1" and null (no change).
func (b *lioBool) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", "1", `"1"`:
		*b = true
	case "false", "0", `"0"`:
		*b = false
	case "null":
	default:
		return fmt.Errorf("not a boolean: %s", data)
	}
	return nil
}

// lioAttributes holds configfs attributes or parameters: rtslib dumps
// attributes as integers and parameters as strings.
type lioAttributes map[string]json.RawMessage

// int returns an attribute as an integer; ok is false when it is absent.
func (a lioAttributes) int(key string) (v int64, ok bool, err error) {
	raw, ok := a[key]
	if !ok {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &v); err == nil {
		return v, true, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		if v, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64); err == nil {
			return v, true, nil
		}
	}
	return 0, true, fmt.Errorf("not an integer: %s", raw)
}

// str returns a parameter as a string, "" when absent or not a string.
func (a lioAttributes) str(key string) string {
	var s string
	if raw, ok := a[key]; ok && json.Unmarshal(raw, &s) == nil {
		return s
	}
	return ""
}
