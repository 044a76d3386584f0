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

// The AliyunKMS… documents are copied from the RAM system-policy reference
// pages (help.aliyun.com/zh/ram/developer-reference/<name>, checked for
// this release) so that programs written against the real service find the
// names they attach. They name other services' actions (rds:, ecs:, ram:
// CreateServiceLinkedRole) that Keyhold never checks; those statements are
// inert here but kept so the text matches what RAM shows.
func init() {
	const src = "Alibaba Cloud RAM system policy reference, "
	systemDefs = append(systemDefs,
		SystemPolicyDef{
			Name:        "AliyunKMSFullAccess",
			Description: "Provides full access to Key Management Service (KMS).",
			Source:      src + "AliyunKMSFullAccess v3",
			Document: `{
  "Version": "1",
  "Statement": [
    {
      "Action": "kms:*",
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": "ram:CreateServiceLinkedRole",
      "Condition": {
        "StringEquals": {
          "ram:ServiceName": [
            "secretsmanager-rds.kms.aliyuncs.com",
            "keystore.kms.aliyuncs.com"
          ]
        }
      },
      "Resource": "*",
      "Effect": "Allow"
    }
  ]
}`,
		},
		SystemPolicyDef{
			Name:        "AliyunKMSReadOnlyAccess",
			Description: "Provides read-only access to Key Management Service (KMS).",
			Source:      src + "AliyunKMSReadOnlyAccess v3",
			Document: `{
  "Version": "1",
  "Statement": [
    {
      "Action": [
        "kms:List*",
        "kms:Describe*",
        "kms:GetPublicKey",
        "kms:GetUploadBackupDataInfo",
        "kms:GetKmsInstanceSharedAccounts",
        "kms:GetKmsInstanceQuotaInfos",
        "kms:GetCheckAssociateResourceTaskResults",
        "kms:GetKeyPolicy",
        "kms:GetKeyDefaultPolicy",
        "kms:GetSecretPolicy",
        "kms:GetSecretDefaultPolicy",
        "kms:GetKmsInstance",
        "kms:GetDefaultKmsInstance"
      ],
      "Resource": "*",
      "Effect": "Allow"
    }
  ]
}`,
		},
		SystemPolicyDef{
			Name:        "AliyunKMSSecretAdminAccess",
			Description: "Provides access to manage secrets in KMS.",
			Source:      src + "AliyunKMSSecretAdminAccess v5",
			Document: `{
  "Version": "1",
  "Statement": [
    {
      "Action": "kms:*",
      "Resource": "acs:kms:*:*:secret*",
      "Effect": "Allow"
    },
    {
      "Action": "kms:GetRandomPassword",
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": [
        "rds:DescribeDBInstances",
        "rds:DescribeDBInstanceAttribute",
        "rds:DescribeDatabases",
        "rds:DescribeAccounts",
        "rds:DescribeDBInstanceNetInfo",
        "rds:CreateAccount",
        "rds:GrantAccountPrivilege"
      ],
      "Resource": "*",
      "Effect": "Allow"
    },
    {
      "Action": "ecs:DescribeInstances",
      "Resource": "acs:ecs:*:*:instance/*",
      "Effect": "Allow"
    },
    {
      "Action": ["ecs:TagResources","ecs:UntagResources","ecs:ListTagResources"],
      "Resource": ["acs:kms:*:*:key/*","acs:kms:*:*:secret/*"],
      "Effect": "Allow"
    },
    {
      "Action": "ram:CreateServiceLinkedRole",
      "Condition": {
        "StringEquals": {
          "ram:ServiceName": [
            "secretsmanager-rds.kms.aliyuncs.com",
            "secretsmanager-ecs.kms.aliyuncs.com"
          ]
        }
      },
      "Resource": "*",
      "Effect": "Allow"
    }
  ]
}`,
		},
		SystemPolicyDef{
			Name:        "AliyunKMSSecretUserAccess",
			Description: "Provides access to retrieve the secrets in KMS.",
			Source:      src + "AliyunKMSSecretUserAccess v1",
			Document: `{
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:GetSecretValue"
      ],
      "Resource": "*"
    },
    {
      "Effect": "Allow",
      "Action": [
        "kms:DescribeSecret",
        "kms:ListSecretVersionIds"
      ],
      "Resource": "*"
    }
  ],
  "Version": "1"
}`,
		},
		SystemPolicyDef{
			Name:        "AliyunKMSCryptoAdminAccess",
			Description: "Provides administrative access to cryptographic keys in KMS.",
			Source:      src + "AliyunKMSCryptoAdminAccess v2",
			Document: `{
  "Version": "1",
  "Statement": [
    {
      "Action": [
        "kms:*"
      ],
      "Resource": [
        "acs:kms:*:*:key*",
        "acs:kms:*:*:alias*"
      ],
      "Effect": "Allow"
    },
    {
      "Action": ["ecs:TagResources","ecs:UntagResources","ecs:ListTagResources"],
      "Resource": ["acs:kms:*:*:key/*","acs:kms:*:*:secret/*"],
      "Effect": "Allow"
    }
  ]
}`,
		},
		SystemPolicyDef{
			Name:        "AliyunKMSCryptoUserAccess",
			Description: "Provides access to the cryptographic APIs of KMS.",
			Source:      src + "AliyunKMSCryptoUserAccess v1",
			Document: `{
  "Version": "1",
  "Statement": [
    {
      "Effect": "Allow",
      "Action": [
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:GenerateDataKey",
        "kms:GenerateDataKeyWithoutPlaintext",
        "kms:AsymmetricDecrypt",
        "kms:AsymmetricEncrypt",
        "kms:AsymmetricSign",
        "kms:AsymmetricVerify",
        "kms:GetPublicKey"
      ],
      "Resource": "*"
    }
  ]
}`,
		},
	)
}
