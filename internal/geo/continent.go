package geo

// continents maps ISO 3166-1 alpha-2 country codes to the two-letter continent codes that
// MaxMind and GeoNames use (AF, AN, AS, EU, NA, OC, SA). RIR files carry countries but no
// continent, so this table gives the continent of their entries. The RIRs' pseudo-countries are
// included: EU (RIPE NCC's "European Union", region-wide) maps to EU and AP (APNIC's
// "Asia/Pacific region") to AS.
var continents = func() map[[2]byte][2]byte {
	byContinent := map[string]string{
		"AF": "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW KE KM LR LS " +
			"LY MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TG TN TZ UG YT " +
			"ZA ZM ZW",
		"AN": "AQ BV GS HM TF",
		"AS": "AE AF AM AZ BD BH BN BT CC CN CX GE HK ID IL IN IO IQ IR JO JP KG KH KP KR KW KZ " +
			"LA LB LK MM MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE AP",
		"EU": "AD AL AT AX BA BE BG BY CH CY CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS " +
			"IT JE LI LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK EU",
		"NA": "AG AI AW BB BL BM BQ BS BZ CA CR CU CW DM DO GD GL GP GT HN HT JM KN KY LC MF MQ " +
			"MS MX NI PA PM PR SV SX TC TT US VC VG VI",
		"OC": "AS AU CK FJ FM GU KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV UM VU WF WS",
		"SA": "AR BO BR CL CO EC FK GF GY PE PY SR UY VE",
	}
	m := make(map[[2]byte][2]byte, 256)
	for cont, list := range byContinent {
		for i := 0; i+2 <= len(list); i += 3 {
			m[[2]byte{list[i], list[i+1]}] = [2]byte{cont[0], cont[1]}
		}
	}
	return m
}()

// ContinentOf returns the continent code of an ISO 3166-1 alpha-2 country code (upper case),
// or the zero value when the country is unknown.
func ContinentOf(country [2]byte) [2]byte {
	return continents[country]
}
