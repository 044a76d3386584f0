package policy

import "sync"

// SystemPolicyDef is a built-in policy: it cannot be changed or deleted,
// and GetPolicy shows it with PolicyType "System".
type SystemPolicyDef struct {
	Name        string
	Description string
	Document    string    // the policy text, as GetPolicy returns it
	Parsed      *Document // Document, parsed
	// Source says where the document comes from: "keyhold" for Keyhold's
	// own roles, or the reference for an AliyunKMS policy copied from the
	// real service.
	Source string
}

var (
	systemOnce sync.Once
	systemList []SystemPolicyDef
	systemIdx  map[string]int
)

func loadSystem() {
	for _, p := range systemDefs {
		d, err := Parse(p.Document)
		if err != nil {
			// A broken built-in is a programming error caught by the tests.
			panic("policy: system policy " + p.Name + ": " + err.Error())
		}
		p.Parsed = d
		systemList = append(systemList, p)
	}
	systemIdx = make(map[string]int, len(systemList))
	for i, p := range systemList {
		systemIdx[p.Name] = i
	}
}

// System returns every system policy, Keyhold's roles first. The slice is
// a copy; the parsed documents are shared and must not be modified.
func System() []SystemPolicyDef {
	systemOnce.Do(loadSystem)
	return append([]SystemPolicyDef(nil), systemList...)
}

// SystemPolicy looks a system policy up by its exact name.
func SystemPolicy(name string) (*SystemPolicyDef, bool) {
	systemOnce.Do(loadSystem)
	i, ok := systemIdx[name]
	if !ok {
		return nil, false
	}
	p := systemList[i]
	return &p, true
}

const keyhold = "keyhold"

var systemDefs = []SystemPolicyDef{
	{
		Name: "KeyholdSecretAdministrator",
		Description: "Manage secrets (create, describe, put new values, rotate, tag, delete, restore, " +
			"set secret policies) without reading any secret value.",
		Source: keyhold,
		Document: `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:List*",
        "kms:Describe*",
        "kms:CreateSecret",
        "kms:PutSecretValue",
        "kms:Update*",
        "kms:DeleteSecret",
        "kms:RestoreSecret",
        "kms:RotateSecret",
        "kms:GetRandomPassword",
        "kms:GetSecretPolicy",
        "kms:SetSecretPolicy",
        "kms:TagResource",
        "kms:UntagResource",
        "kms:TagResources",
        "kms:UntagResources",
        "kms:ListTagResources"
      ],
      "Resource": "*"
    }
  ]
}`,
	},
	{
		Name: "KeyholdSecretUser",
		Description: "List and describe secrets and read their values. kms:Decrypt is included because " +
			"reading a secret encrypted under a customer CMK also needs Decrypt on that key.",
		Source: keyhold,
		Document: `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:List*",
        "kms:Describe*",
        "kms:GetSecretValue",
        "kms:Decrypt"
      ],
      "Resource": "*"
    }
  ]
}`,
	},
	{
		Name:        "KeyholdReadOnly",
		Description: "List and describe keys and secrets; no secret values, no cryptographic operations.",
		Source:      keyhold,
		Document: `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:List*",
        "kms:Describe*"
      ],
      "Resource": "*"
    }
  ]
}`,
	},
	{
		Name:        "KeyholdFullAccess",
		Description: "Everything: KMS, identities and policies (RAM), and Keyhold's own actions (audit, hosts, deployment).",
		Source:      keyhold,
		Document: `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:*",
        "ram:*",
        "keyhold:*"
      ],
      "Resource": "*"
    }
  ]
}`,
	},
	{
		Name: "KeyholdBastionAccess",
		Description: "What the bastion needs: list secrets, read ECS secrets under acs/ecs/, decrypt them, " +
			"and look hosts up.",
		Source: keyhold,
		Document: `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": "kms:ListSecrets",
      "Resource": "acs:kms:*:*:secret"
    },
    {
      "Effect": "Allow",
      "Action": [
        "kms:DescribeSecret",
        "kms:GetSecretValue"
      ],
      "Resource": "acs:kms:*:*:secret/acs/ecs/*"
    },
    {
      "Effect": "Allow",
      "Action": "kms:Decrypt",
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": [
        "keyhold:ListHosts",
        "keyhold:DescribeHost"
      ],
      "Resource": "*"
    }
  ]
}`,
	},
}
