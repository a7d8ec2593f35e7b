package kerberos

import (
	"errors"
	"fmt"
	"time"

	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

var (
	oidKRB5   = gssapi.OIDKRB5.OID()
	oidSPNEGO = gssapi.OIDSPNEGO.OID()
	// oidMSKRB5 is the Kerberos OID as old Windows clients write it.
	oidMSKRB5 = gssapi.OIDMSLegacyKRB5.OID()
)

// token is a client's initial context token: a Kerberos AP-REQ, sent as
// a bare Kerberos GSS-API token (pykerberos' default mechanism) or inside
// a SPNEGO NegTokenInit (browsers, curl --negotiate).
type token struct {
	spnego bool
	apReq  messages.APReq
}

func parseToken(raw []byte) (*token, error) {
	var oid asn1.ObjectIdentifier
	if _, err := asn1.UnmarshalWithParams(raw, &oid, "application,explicit,tag:0"); err != nil {
		return nil, fmt.Errorf("not a GSS-API initial token: %w", err)
	}
	t := &token{}
	mech := raw
	switch {
	case oid.Equal(oidKRB5):
	case oid.Equal(oidSPNEGO):
		var st spnego.SPNEGOToken
		if err := st.Unmarshal(raw); err != nil {
			return nil, err
		}
		if !st.Init || len(st.NegTokenInit.MechTokenBytes) == 0 || !offersKerberos(st.NegTokenInit.MechTypes) {
			return nil, errors.New("SPNEGO token without a Kerberos initial token")
		}
		mech, t.spnego = st.NegTokenInit.MechTokenBytes, true
	default:
		return nil, fmt.Errorf("mechanism %s is not Kerberos or SPNEGO", oid)
	}
	var kt spnego.KRB5Token
	if err := kt.Unmarshal(mech); err != nil {
		return nil, err
	}
	if !kt.IsAPReq() {
		return nil, errors.New("the Kerberos token is not an AP-REQ")
	}
	t.apReq = kt.APReq
	return t, nil
}

func offersKerberos(mechs []asn1.ObjectIdentifier) bool {
	return len(mechs) > 0 && (mechs[0].Equal(oidKRB5) || mechs[0].Equal(oidMSKRB5))
}

// encAPRepPart and apRep are RFC 4120's EncAPRepPart (without the
// optional subkey and sequence number) and KRB_AP_REP, for marshalling.
type encAPRepPart struct {
	CTime time.Time `asn1:"generalized,explicit,tag:0"`
	Cusec int       `asn1:"explicit,tag:1"`
}

type apRep struct {
	PVNO    int                 `asn1:"explicit,tag:0"`
	MsgType int                 `asn1:"explicit,tag:1"`
	EncPart types.EncryptedData `asn1:"explicit,tag:2"`
}

// reply builds the mutual-authentication token for a verified AP-REQ:
// an AP-REP echoing the authenticator's time, encrypted in the ticket's
// session key (which only the holder of the service key could read), in
// the mechanism the client used.
func (t *token) reply() ([]byte, error) {
	enc, err := asn1.Marshal(encAPRepPart{CTime: t.apReq.Authenticator.CTime.UTC(), Cusec: t.apReq.Authenticator.Cusec})
	if err != nil {
		return nil, fmt.Errorf("marshal EncAPRepPart: %w", err)
	}
	ed, err := crypto.GetEncryptedData(asn1tools.AddASNAppTag(enc, asnAppTag.EncAPRepPart),
		t.apReq.Ticket.DecryptedEncPart.Key, keyusage.AP_REP_ENCPART, 0)
	if err != nil {
		return nil, fmt.Errorf("encrypt AP-REP: %w", err)
	}
	rep, err := asn1.Marshal(apRep{PVNO: 5, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		return nil, fmt.Errorf("marshal AP-REP: %w", err)
	}
	oid, _ := asn1.Marshal(oidKRB5)
	krb5 := asn1tools.AddASNAppTag(append(append(oid, 0x02, 0x00), asn1tools.AddASNAppTag(rep, asnAppTag.APREP)...), 0)
	if !t.spnego {
		return krb5, nil
	}
	resp := spnego.NegTokenResp{NegState: asn1.Enumerated(spnego.NegStateAcceptCompleted), SupportedMech: oidKRB5, ResponseToken: krb5}
	return resp.Marshal()
}
